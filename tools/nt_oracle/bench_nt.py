"""neural-tangents speed baseline: steady-state NNGP+NTK kernel entries per second on CPU, float64.

Runs in its OWN virtual environment (see tools/nt_oracle/README.md):

    /tmp/ntvenv/bin/python tools/nt_oracle/bench_nt.py                   # all cases, one run
    /tmp/ntvenv/bin/python tools/nt_oracle/bench_nt.py --cases=fc --repeats=9
    /tmp/ntvenv/bin/python tools/nt_oracle/bench_nt.py --modes=eager --cases=fc,cnn_flatten,cnn_gap_16

One kernel entry = one (x1_i, x2_j) pair with NNGP and NTK computed together by
`jax.jit(kernel_fn)(x1, x2, ("nngp", "ntk"))` (`--modes=eager`: NT's un-jitted kernel_fn), NTK
parameterization (Novak et al. 2020, arXiv 1912.02803).
The first call (compile + run) and a second warm call are timed separately and discarded; then `--repeats`
repeats are timed with `block_until_ready` (a repeat of a fast case loops over calls for >= 0.5 s and counts
the mean per call) and the median gives entries/s = n1 * n2 / median seconds per call.

Each run is appended to `--record` (default tools/nt_oracle/nt_baseline.json) together with the load average
before and after it; the file's `summary` is the median over runs of each case's per-run median.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import statistics
import time

from absl import app
from absl import flags
import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

from host import check_record, cpu_model  # noqa: E402  (tools/nt_oracle/host.py: this script's folder is on sys.path)

DEFAULT_RECORD = pathlib.Path(__file__).resolve().parent / "nt_baseline.json"
SEED = 0
DEPTH = 10
W_STD, B_STD = float(np.sqrt(2.0)), 0.1
WIDTH = 512  # ignored by kernel_fn in NTK parameterization
MIN_REPEAT_S = 0.5  # fast cases: one timed repeat loops over calls for at least this long
SLOW_CALL_S = 10.0  # cases slower than this per call use --repeats_slow
PACKAGES = ("neural-tangents", "jax", "jaxlib", "tf2jax", "tensorflow-cpu", "numpy", "absl-py")

# name -> (description, input shape without batch, block n1 x n2, architecture, depth); the names are the keys of the
# harness's benchmarks/perf/test_kernel_throughput.py CASES (nt_key).
CASES = {
    "fc": ("FC depth 10 ReLU, 3072-dim inputs, 64x64 block", (3072,), (64, 64), "fc", DEPTH),
    "cnn_flatten": ("CNN-Flatten depth 10 (Conv 3x3 SAME + ReLU), 32x32x3, 32x32 block",
                    (32, 32, 3), (32, 32), "flatten", DEPTH),
    "cnn_gap_32": ("CNN-GAP depth 10 (Conv 3x3 SAME + ReLU), 32x32x3, 8x8 block",
                   (32, 32, 3), (8, 8), "gap", DEPTH),
    "cnn_gap_16": ("CNN-GAP depth 10 (Conv 3x3 SAME + ReLU), 16x16x3, 16x16 block",
                   (16, 16, 3), (16, 16), "gap", DEPTH),
    # the shapes the tiers run (pooling small: 8x8 images, depth 2)
    "cnn_gap_8_depth2": ("CNN-GAP depth 2, 8x8x3, 256x256 block (pooling small)", (8, 8, 3), (256, 256), "gap", 2),
    "cnn_gap_8_depth10": ("CNN-GAP depth 10, 8x8x3, 64x64 block", (8, 8, 3), (64, 64), "gap", DEPTH),
    "cnn_flatten_8_depth2": ("CNN-Flatten depth 2, 8x8x3, 1000x1000 block (pooling small)", (8, 8, 3), (1000, 1000),
                             "flatten", 2),
    "fc_192_depth2": ("FC depth 2 ReLU, 192-dim (8x8x3), 1000x1000 block (pooling small)", (192,), (1000, 1000),
                      "fc", 2),
}
# `--modes=batch`: nt.batch(jit(kernel_fn), batch_size=b) for each b here that divides both block sizes; the
# fastest is kept (neural-tangents at its best configuration).
BATCH_SIZES = (4, 8, 16, 32, 64)
MODES = ("jit", "eager", "batch")

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", list(CASES), f"Cases to time, from {list(CASES)}.")
flags.DEFINE_list("modes", ["jit"], "'jit': jax.jit(kernel_fn) (primary figure); 'eager': NT's kernel_fn "
                  "as returned by stax (op-by-op dispatch, how it is called without jit); 'batch': nt.batch over "
                  "the jitted kernel_fn, the fastest of BATCH_SIZES.")
flags.DEFINE_list("batch_sizes", [str(b) for b in BATCH_SIZES], "Batch sizes tried by --modes=batch (those dividing "
                  "the block).")
flags.DEFINE_integer("repeats", 5, "Timed calls after the compile call (median reported).")
flags.DEFINE_integer("repeats_slow", 3, f"Timed calls for cases whose warm call takes over {SLOW_CALL_S} s.")
flags.DEFINE_string("record", str(DEFAULT_RECORD), "JSON file the run is appended to ('' = don't write).")
flags.DEFINE_bool("summarize_only", False, "Recompute the summary of --record without timing anything.")
flags.DEFINE_string("note", "", "Free text stored with the run (e.g. what else was running).")


def network(architecture: str, depth: int = DEPTH):
  if architecture == "fc":
    hidden = [stax.serial(stax.Dense(WIDTH, W_STD, B_STD), stax.Relu()) for _ in range(depth)]
    return stax.serial(*hidden, stax.Dense(1, W_STD, B_STD))
  hidden = [stax.serial(stax.Conv(WIDTH, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD), stax.Relu())
            for _ in range(depth)]
  readout = stax.Flatten() if architecture == "flatten" else stax.GlobalAvgPool()
  return stax.serial(*hidden, readout, stax.Dense(1, W_STD, B_STD))


def time_case(name: str, mode: str) -> dict:
  """One case in one mode; 'batch' times every batch size of BATCH_SIZES dividing the block and keeps the fastest."""
  if mode != "batch":
    return _time_one(name, mode)
  n1, n2 = CASES[name][2]
  sizes = [b for b in map(int, FLAGS.batch_sizes) if n1 % b == 0 and n2 % b == 0]
  results = [_time_one(name, mode, batch_size=b) for b in sizes]
  best = max(results, key=lambda r: r["entries_per_s"])
  best["batch_sizes_tried"] = {r["batch_size"]: r["entries_per_s"] for r in results}
  return best


def _time_one(name: str, mode: str, batch_size: int | None = None) -> dict:
  description, shape, (n1, n2), architecture, depth = CASES[name]
  rng = np.random.default_rng(SEED)
  x1 = jnp.asarray(rng.standard_normal((n1,) + shape))
  x2 = jnp.asarray(rng.standard_normal((n2,) + shape))
  _, _, kernel_fn = network(architecture, depth)
  if mode in ("jit", "batch"):
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
  if mode == "batch":  # one device: no pmap (device_count=0)
    kernel_fn = nt.batch(kernel_fn, batch_size=batch_size, device_count=0, store_on_device=True)

  start = time.perf_counter()
  jax.block_until_ready(kernel_fn(x1, x2, ("nngp", "ntk")))
  first_call_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(kernel_fn(x1, x2, ("nngp", "ntk")))
  warm_call_s = time.perf_counter() - start
  # Fast calls are timed in loops of `calls_per_repeat` so that one repeat lasts >= MIN_REPEAT_S.
  calls_per_repeat = max(1, math.ceil(MIN_REPEAT_S / max(warm_call_s, 1e-6)))
  repeats = FLAGS.repeats if warm_call_s < SLOW_CALL_S else FLAGS.repeats_slow
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls_per_repeat):
      out = jax.block_until_ready(kernel_fn(x1, x2, ("nngp", "ntk")))
    seconds.append((time.perf_counter() - start) / calls_per_repeat)
  assert np.all(np.isfinite(np.asarray(out.ntk))), name
  median = statistics.median(seconds)
  result = {
      "description": description,
      "mode": mode,
      "input_shape": list(shape),
      "block": [n1, n2],
      "entries": n1 * n2,
      "first_call_s": round(first_call_s, 4),
      "calls_per_repeat": calls_per_repeat,
      "seconds": [round(s, 6) for s in seconds],
      "median_s": round(median, 6),
      "entries_per_s": round(n1 * n2 / median, 3),
      "batch_size": batch_size,
  }
  print(f"{name:12s} {mode:5s} {batch_size or '':>3} {n1 * n2 / median:12.2f} entries/s  (median {median:.4f} s of {repeats}, "
        f"first call {first_call_s:.2f} s)  {description}", flush=True)
  return result


def environment() -> dict:
  versions = {}
  for package in PACKAGES:
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  return {
      "cpu_model": cpu_model(),
      "cpu_count": os.cpu_count(),
      "platform": platform.platform(),
      "python": platform.python_version(),
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "dtype": "float64",
      "versions": versions,
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def case_key(name: str, mode: str) -> str:
  """Record key: the case name for jit (the primary figure), `<name>_eager` otherwise."""
  return name if mode == "jit" else f"{name}_{mode}"


def summarize(runs: list[dict]) -> dict:
  """Per case and mode: the median over runs; `<name>_best`: the faster of jit and batch (NT at its best), which the
  harness's kernel benchmark compares with."""
  summary = {}
  for mode in MODES:
    for name in CASES:
      key = case_key(name, mode)
      rates = [run["cases"][key]["entries_per_s"] for run in runs if key in run["cases"]]
      if rates:
        summary[key] = {"entries_per_s_median_over_runs": round(statistics.median(rates), 3),
                        "entries_per_s_best_run": max(rates),
                        "entries_per_s_all_runs": rates,
                        "mode": mode,
                        "description": CASES[name][0]}
  for name in CASES:
    best = [summary[k] for k in (case_key(name, "jit"), case_key(name, "batch")) if k in summary]
    if best:
      summary[f"{name}_best"] = dict(max(best, key=lambda e: e["entries_per_s_median_over_runs"]))
  return summary


def main(argv):
  del argv
  unknown = set(FLAGS.cases) - set(CASES)
  if unknown:
    raise app.UsageError(f"unknown cases {sorted(unknown)}; known: {list(CASES)}")
  if set(FLAGS.modes) - set(MODES):
    raise app.UsageError(f"modes must be among {MODES}, got {FLAGS.modes}")
  env = environment()
  if FLAGS.record and not FLAGS.summarize_only:
    check_record(pathlib.Path(FLAGS.record), env)
  if FLAGS.summarize_only:
    path = pathlib.Path(FLAGS.record)
    record = json.loads(path.read_text())
    record["summary"] = summarize(record["runs"])
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["summary"], indent=1))
    return
  run = {
      "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "loadavg_before": list(os.getloadavg()),
      "note": FLAGS.note,
      "cases": {case_key(name, mode): time_case(name, mode)
                for mode in FLAGS.modes for name in FLAGS.cases},
      "loadavg_after": list(os.getloadavg()),
  }
  print(f"load average before {run['loadavg_before']} after {run['loadavg_after']}")
  if not FLAGS.record:
    return
  path = pathlib.Path(FLAGS.record)
  record = json.loads(path.read_text()) if path.exists() else {"environment": env, "runs": []}
  record["what"] = ("neural-tangents stax kernel_fn steady-state throughput: kernel entries (x1_i, x2_j) "
                    "per second, NNGP+NTK together, float64, jit, median of timed calls after compile")
  record["command"] = "/tmp/ntvenv/bin/python tools/nt_oracle/bench_nt.py"
  record["runs"].append(run)
  record["summary"] = summarize(record["runs"])
  path.write_text(json.dumps(record, indent=1) + "\n")
  print(f"appended run {len(record['runs'])} to {path}")


if __name__ == "__main__":
  app.run(main)
