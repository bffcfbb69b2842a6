"""neural-tangents speed baseline for the EMPIRICAL (finite-width) NTK: entries per second on CPU, float32.

Runs in its OWN virtual environment (tools/nt_oracle/README.md):

    /tmp/ntvenv/bin/python tools/nt_oracle/bench_nt_empirical.py

Cases, the same nets as `benchmarks/perf/test_empirical_ntk_throughput.py` times in the harness (NTK parameterisation,
ReLU, W_std sqrt(2), b_std 0.1, float32 inputs and weights, the NTK traced over the outputs, trace_axes=(-1,)):
  fc:      FC 3 hidden layers x 512, 3072-dim inputs, 10 outputs, 32x32 block (the WORKSPACE's figure)
  cnn_gap: 2 x (Conv 3x3 SAME 128 channels + ReLU), global average pool, 10 outputs, 8x8x3 inputs, 32x32 block
           (the widest CNN of finite_vs_infinite's small tier)
Each case is timed with every implementation of `nt.empirical_ntk_fn` (1 JACOBIAN_CONTRACTION, 2
NTK_VECTOR_PRODUCTS, 3 STRUCTURED_DERIVATIVES), jitted, vmap_axes=0: first call (compile) discarded, then the
median of `--repeats` calls. Appends the run to nt_empirical_baseline.json beside this file.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import neural_tangents as nt
from neural_tangents import stax

import bench_nt  # the kernel baseline (same folder): its environment description and its --note flag

jax.config.update("jax_enable_x64", False)  # bench_nt turns float64 on at import; these cases are float32

RECORD = pathlib.Path(__file__).resolve().parent / "nt_empirical_baseline.json"
W_STD, B_STD = float(np.sqrt(2.0)), 0.1
OUTPUTS = 10
CASES = {
    "fc": ("FC 3x512 ReLU, 3072-dim inputs, 10 outputs, 32x32 block", (3072,), 32),
    "cnn_gap": ("CNN-GAP 2x(Conv 3x3 SAME 128 + ReLU), 8x8x3, 10 outputs, 32x32 block", (8, 8, 3), 32),
}
IMPLEMENTATIONS = {1: "jacobian_contraction", 2: "ntk_vector_products", 3: "structured_derivatives"}

FLAGS = flags.FLAGS
flags.DEFINE_list("empirical_cases", list(CASES), "Cases to time.")
flags.DEFINE_integer("empirical_repeats", 5, "Timed calls after the compile call (median reported).")


def network(name: str):
  if name == "fc":
    hidden = [stax.serial(stax.Dense(512, W_STD, B_STD), stax.Relu()) for _ in range(3)]
    return stax.serial(stax.Flatten(), *hidden, stax.Dense(OUTPUTS, W_STD, B_STD))
  hidden = [stax.serial(stax.Conv(128, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), stax.Relu())
            for _ in range(2)]
  return stax.serial(*hidden, stax.GlobalAvgPool(), stax.Dense(OUTPUTS, W_STD, B_STD))


def time_case(name: str, implementation: int) -> dict:
  description, shape, n = CASES[name]
  init_fn, apply_fn, _ = network(name)
  rng = np.random.default_rng(0)
  x1, x2 = (jnp.asarray(rng.standard_normal((n,) + shape), dtype=jnp.float32) for _ in range(2))
  _, params = init_fn(jax.random.PRNGKey(0), x1.shape)
  fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=implementation))
  start = time.perf_counter()
  try:
    jax.block_until_ready(fn(x1, x2, params))
  except Exception as e:  # pylint: disable=broad-except  # an implementation this jax cannot run: recorded, not timed
    print(f"{name:8s} {IMPLEMENTATIONS[implementation]:24s} failed: {type(e).__name__}: {e}", flush=True)
    return {"description": description, "implementation": IMPLEMENTATIONS[implementation],
            "error": f"{type(e).__name__}: {e}"}
  first = time.perf_counter() - start
  seconds = []
  for _ in range(FLAGS.empirical_repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(x1, x2, params))
    seconds.append(time.perf_counter() - start)
  assert np.all(np.isfinite(np.asarray(out)))
  median = statistics.median(seconds)
  print(f"{name:8s} {IMPLEMENTATIONS[implementation]:24s} {n * n / median:12.1f} entries/s (median {median:.4f} s, "
        f"first call {first:.2f} s)", flush=True)
  return {"description": description, "implementation": IMPLEMENTATIONS[implementation], "block": [n, n],
          "first_call_s": round(first, 4), "seconds": [round(s, 6) for s in seconds], "median_s": round(median, 6),
          "entries_per_s": round(n * n / median, 3)}


def main(argv):
  del argv
  run = {"started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
         "loadavg_before": list(os.getloadavg()), "note": FLAGS.note,
         "cases": {f"{name}/{IMPLEMENTATIONS[i]}": time_case(name, i) for name in FLAGS.empirical_cases for i in IMPLEMENTATIONS},
         "loadavg_after": list(os.getloadavg())}
  environment = {**bench_nt.environment(), "dtype": "float32"}
  record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
  if record.get("environment") != environment:
    record = {"environment": environment, "runs": []}
  record["what"] = ("neural-tangents empirical_ntk_fn (jit, vmap_axes=0, trace_axes=(-1,)) steady-state throughput, "
                    "entries per second of one (n x n) block between two input batches, float32")
  record["command"] = "/tmp/ntvenv/bin/python tools/nt_oracle/bench_nt_empirical.py"
  record["runs"].append(run)
  RECORD.write_text(json.dumps(record, indent=1) + "\n")
  print(f"appended run {len(record['runs'])} to {RECORD}")


if __name__ == "__main__":
  app.run(main)
