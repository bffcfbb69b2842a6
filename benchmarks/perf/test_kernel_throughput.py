"""Kernel throughput: NNGP + NTK entries per second, steady state after compilation.

Run (not part of `make test`; pyproject's addopts disable pytest-benchmark timing by default):

    make bench                                                     # every case, table at the end
    .venv/bin/python -m pytest benchmarks/perf --benchmark-enable -p no:xdist -s -k "cnn_gap and float64"
    make bench PYTEST_ARGS="--benchmark-json=bench.json"           # machine-readable record

One entry is one (x1_i, x2_j) pair with NNGP and NTK computed together by `spec.kernel(x1, x2,
get=("nngp", "ntk"), dtype=...)`, from numpy inputs to numpy outputs. The first call (trace + compile + run) is
discarded; then `ROUNDS` rounds are timed, each of as many calls as last at least MIN_ROUND_S (as
tools/nt_oracle/bench_nt.py times neural-tangents), and the median over rounds of the mean call gives
entries/s = n1 * n2 / median seconds. Cases match
tools/nt_oracle/bench_nt.py, whose neural-tangents figures (float64, the faster of jax.jit and nt.batch) give the
ratio column where a record of this host exists (`nt_records`). Targets (same machine, float64): CNN-GAP >= 10x NT,
CNN-Flatten >= 5x, FC >= 1x.

FLOPs per entry (architecture-inherent count of the NT `stax` recursion, Novak et al. 2020, arXiv
1912.02803; transcendentals such as sqrt and arccos count one flop; the per-input diagonal terms k(x, x),
amortised over n1 + n2 instead of n1 n2, are left out). Per scalar covariance entry and layer:
  - Dense/Conv affine  K <- w^2 K + b^2, Theta <- w^2 Theta + K:            AFFINE_FLOPS = 4
  - Conv 3x3 stencil (sum over 9 shifted taps, NNGP and NTK):              2 x 9 = 18
  - ReLU arc-cosine map (Cho & Saul 2009, Eq. 6) with its derivative and
    the NTK update Theta <- K' + Theta * Kdot (cos, arccos, sqrt, ...):   RELU_FLOPS = 20
  FC (input dim d, L hidden layers):      2 d (x . x') + L (4 + 20) + 4
  CNN-Flatten (H x W x C, L conv layers):  only the H W spatially diagonal covariances are needed for a
                                           Flatten readout:  H W [2 C + L (4 + 18 + 20) + 4]
  CNN-GAP:                                 all (H W)^2 pixel pairs:  (H W)^2 [2 C + L (4 + 18 + 20) + 4]
e.g. CNN-GAP on 32x32x3 with L = 10: 1024^2 x 430 = 4.5e8 flops per entry; CNN-Flatten 4.4e5; FC 6.4e3.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
import os
import pathlib
import statistics
import time

import numpy as np
import pytest

from harness import nets
from harness.precision import DTYPES

# `make bench-smoke` (CI): every case once, depth 2 on a 1 x 1 block, one untimed round: the benchmark code runs,
# nothing is measured.
SMOKE = os.environ.get("HARNESS_BENCH_SMOKE") == "1"
DEPTH = 2 if SMOKE else 10
W_STD, B_STD = 2.0**0.5, 0.1
SEED = 0
ROUNDS = 5
MIN_ROUND_S = 0.5  # fast cases: one round repeats the call for at least this long
AFFINE_FLOPS, STENCIL_FLOPS, RELU_FLOPS = 4, 18, 20
NT_BASELINE = pathlib.Path(__file__).resolve().parents[2] / "tools" / "nt_oracle" / "nt_baseline.json"
# Empirical NTK cases (tools/nt_oracle/bench_nt_empirical.py times the same nets in neural-tangents).
EMPIRICAL_DEPTH, EMPIRICAL_WIDTH, EMPIRICAL_CHANNELS, EMPIRICAL_OUTPUTS, EMPIRICAL_BLOCK = 3, 512, 128, 10, 32
NT_EMPIRICAL_BASELINE = NT_BASELINE.parent / "nt_empirical_baseline.json"
# neural-tangents records (one machine and stack each, tools/nt_oracle/README.md): of those measured on this host,
# the first holding a case gives its baseline, these in this order first
NT_BASELINES = (NT_BASELINE, NT_BASELINE.parent / "nt_baseline_tier_shapes.json")
EMPIRICAL_CASES = {
    "fc": ("FC 3x512 ReLU, 3072-dim inputs, 10 outputs, 32x32 block", (3072,),
           lambda: nets.serial(nets.repeat(nets.serial(nets.Dense(w_std=W_STD, b_std=B_STD), nets.Relu()),
                                           EMPIRICAL_DEPTH), nets.Dense(w_std=W_STD, b_std=B_STD))),
    "cnn_gap": ("CNN-GAP 2x(Conv 3x3 128 + ReLU), 8x8x3, 10 outputs, 32x32 block", (8, 8, 3),
                lambda: nets.serial(nets.repeat(nets.serial(nets.Conv(filter_size=3, w_std=W_STD, b_std=B_STD),
                                                            nets.Relu()), 2),
                                    nets.GlobalAvgPool(), nets.Dense(w_std=W_STD, b_std=B_STD))),
}

RESULTS: list[dict] = []  # rows of the table printed by conftest.pytest_terminal_summary
# Tests of `make bench-compare` slow every timed call down by this factor (a deliberately slowed kernel).
SLOWDOWN = float(os.environ.get("HARNESS_BENCH_SLOWDOWN", "1"))


@dataclasses.dataclass(frozen=True)
class Case:
  description: str
  architecture: str  # "fc" | "flatten" | "gap"
  input_shape: tuple[int, ...]
  block: tuple[int, int]
  nt_key: str  # key in nt_baseline.json's summary
  depth: int = DEPTH


CASES = {
    "fc": Case("FC depth 10 ReLU, 3072-dim, 64x64 block", "fc", (3072,), (64, 64), "fc"),
    "cnn_flatten": Case("CNN-Flatten depth 10, 32x32x3, 32x32 block", "flatten", (32, 32, 3), (32, 32),
                        "cnn_flatten"),
    "cnn_gap": Case("CNN-GAP depth 10, 32x32x3, 8x8 block", "gap", (32, 32, 3), (8, 8), "cnn_gap_32"),
    "cnn_gap_16": Case("CNN-GAP depth 10, 16x16x3, 16x16 block", "gap", (16, 16, 3), (16, 16), "cnn_gap_16"),
    # the shapes the tiers run: pooling small's kernels (8x8 after the 4x pooling, depth 2, its 256-row tiles' scale)
    "cnn_gap_8_depth2": Case("CNN-GAP depth 2, 8x8x3, 256x256 block (pooling small)", "gap", (8, 8, 3), (256, 256),
                             "cnn_gap_8_depth2", depth=2),
    "cnn_gap_8_depth10": Case("CNN-GAP depth 10, 8x8x3, 64x64 block", "gap", (8, 8, 3), (64, 64),
                              "cnn_gap_8_depth10"),
    "cnn_flatten_8_depth2": Case("CNN-Flatten depth 2, 8x8x3, 1000x1000 block (pooling small)", "flatten",
                                 (8, 8, 3), (1000, 1000), "cnn_flatten_8_depth2", depth=2),
    "fc_192_depth2": Case("FC depth 2 ReLU, 192-dim (8x8x3), 1000x1000 block (pooling small)", "fc", (192,),
                          (1000, 1000), "fc_192_depth2", depth=2),
}


def network(architecture: str, depth: int = DEPTH):
  """The NT bench network (tools/nt_oracle/bench_nt.py) as a harness spec."""
  if architecture == "fc":
    layer = nets.serial(nets.Dense(w_std=W_STD, b_std=B_STD), nets.Relu())
    return nets.serial(nets.repeat(layer, depth), nets.Dense(w_std=W_STD, b_std=B_STD))
  layer = nets.serial(nets.Conv(filter_size=3, w_std=W_STD, b_std=B_STD), nets.Relu())
  readout = nets.Flatten() if architecture == "flatten" else nets.GlobalAvgPool()
  return nets.serial(nets.repeat(layer, depth), readout, nets.Dense(w_std=W_STD, b_std=B_STD))


def flops_per_entry(case: Case, depth: int = DEPTH) -> int:
  """FLOPs for one (x, x') NNGP+NTK pair, by the count in the module docstring."""
  per_layer_conv = AFFINE_FLOPS + STENCIL_FLOPS + RELU_FLOPS
  if case.architecture == "fc":
    return 2 * case.input_shape[0] + depth * (AFFINE_FLOPS + RELU_FLOPS) + AFFINE_FLOPS
  h, w, c = case.input_shape
  pairs = h * w if case.architecture == "flatten" else (h * w) ** 2
  return pairs * (2 * c + depth * per_layer_conv + AFFINE_FLOPS)


def forward_flops(model) -> int:
  """FLOPs of one example's forward pass through the affine layers: 2 x kernel size x output positions."""
  total = 0
  for layer in model.layers:
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
      continue
    positions = math.prod(int(d) for d in layer.output.shape[1:-1])
    total += 2 * math.prod(int(d) for d in kernel.shape) * positions
  return total


def empirical_ntk_flops_per_entry(model, n1: int, n2: int, traced: bool = True) -> float:
  """FLOPs per (x, x') entry of an empirical NTK by Jacobian contraction: the Jacobians (reverse mode, one pass
  per output, ~3 x forward: Griewank & Walther 2008, section 4.6) amortised over the block, plus the contraction
  2 P per output pair (k of them traced, k^2 untraced)."""
  outputs = int(model.outputs[0].shape[-1])
  params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  jacobians = (n1 + n2) * outputs * 3 * forward_flops(model)
  contraction = n1 * n2 * 2 * params * (outputs if traced else outputs**2)
  return (jacobians + contraction) / (n1 * n2)


@functools.cache
def nt_host():
  """tools/nt_oracle/host.py (how bench_nt.py names a host and checks a record), loaded by path: tools/ is not a
  package."""
  spec = importlib.util.spec_from_file_location("nt_oracle_host", NT_BASELINE.parent / "host.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@functools.cache
def _host_cpu_model() -> str:
  """This host as bench_nt.py records it."""
  return nt_host().cpu_model()


def nt_records(cpu_model: str, folder: pathlib.Path = NT_BASELINE.parent) -> list[pathlib.Path]:
  """The neural-tangents records in `folder` measured on a host of this `cpu_model`: NT_BASELINES' names first,
  then the other nt_baseline*.json by name. A ratio against another machine's neural-tangents measures machines."""
  candidates = [*(folder / path.name for path in NT_BASELINES), *sorted(folder.glob("nt_baseline*.json"))]
  return [path for path in dict.fromkeys(candidates)
          if path.exists() and json.loads(path.read_text()).get("environment", {}).get("cpu_model") == cpu_model]


def nt_entries_per_s(key: str, records: list[pathlib.Path]) -> tuple[float | None, str | None]:
  """(median neural-tangents entries/s over recorded runs (float64), at its best where recorded (`<key>_best`: the
  faster of jit and nt.batch), the record's file name) from the first of `records` holding the case; (None, None)
  without one."""
  for path in records:
    summary = json.loads(path.read_text()).get("summary", {})
    entry = summary.get(f"{key}_best", summary.get(key))
    if entry is not None:
      return float(entry["entries_per_s_median_over_runs"]), path.name
  return None, None


def nt_empirical_entries_per_s(case: str) -> float | None:
  """neural-tangents' best implementation of empirical_ntk_fn on this case: the highest over implementations of
  the median over recorded runs (tools/nt_oracle/nt_empirical_baseline.json), or None without a baseline."""
  if not NT_EMPIRICAL_BASELINE.exists():
    return None
  runs = json.loads(NT_EMPIRICAL_BASELINE.read_text()).get("runs", [])
  by_implementation = {}
  for run in runs:
    for key, result in run["cases"].items():
      if key.split("/")[0] == case and "entries_per_s" in result:
        by_implementation.setdefault(result["implementation"], []).append(result["entries_per_s"])
  return max((statistics.median(rates) for rates in by_implementation.values()), default=None)


def _timed(fn, *args, **kwargs):
  """Wraps fn so every call's wall time is kept (works with timing enabled or disabled)."""
  seconds = []

  def call():
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    if SLOWDOWN > 1:
      time.sleep((SLOWDOWN - 1) * (time.perf_counter() - start))
    seconds.append(time.perf_counter() - start)
    return out

  return call, seconds


def _median_call_s(benchmark, fn, *args, **kwargs):
  """(output, median over ROUNDS rounds of the mean call time, calls per round); a round is as many calls as
  last at least MIN_ROUND_S."""
  call, seconds = _timed(fn, *args, **kwargs)
  if SMOKE:
    return benchmark.pedantic(call, rounds=1, iterations=1), seconds[-1], 1
  call()  # one warm call outside the rounds sets the count from a steady-state time
  calls = max(1, math.ceil(MIN_ROUND_S / max(seconds.pop(), 1e-6)))
  out = benchmark.pedantic(call, rounds=ROUNDS, iterations=calls)
  rounds = [sum(seconds[i:i + calls]) / calls for i in range(0, len(seconds), calls)]
  return out, statistics.median(rounds), calls


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_throughput(benchmark, name, dtype):
  case = CASES[name]
  rng = np.random.default_rng(SEED)
  n1, n2 = (1, 1) if SMOKE else case.block
  x1 = rng.standard_normal((n1,) + case.input_shape)
  x2 = rng.standard_normal((n2,) + case.input_shape)
  spec = network(case.architecture, case.depth)
  start = time.perf_counter()
  if not SMOKE:
    spec.kernel(x1, x2, get=("nngp", "ntk"), dtype=dtype)  # trace + compile
  first_call_s = time.perf_counter() - start
  out, median, calls = _median_call_s(benchmark, spec.kernel, x1, x2, get=("nngp", "ntk"), dtype=dtype)
  assert all(np.all(np.isfinite(out[g])) for g in ("nngp", "ntk"))
  rate = n1 * n2 / median
  flops = flops_per_entry(case, case.depth)
  nt, nt_record = nt_entries_per_s(case.nt_key, nt_records(_host_cpu_model()))
  row = {"case": name, "description": case.description, "dtype": dtype, "entries_per_s": rate,
         "flops_per_entry": flops, "gflops_per_s": rate * flops / 1e9, "first_call_s": first_call_s,
         "median_s": median, "calls_per_round": calls, "nt_entries_per_s": nt, "nt_record": nt_record,
         "ratio_to_nt": None if nt is None else rate / nt}
  benchmark.extra_info.update(row)
  RESULTS.append(row)


@pytest.mark.parametrize("name", list(EMPIRICAL_CASES))
def test_empirical_ntk_throughput(benchmark, name):
  """Finite-width NTK (nets.empirical_ntk: structured Dense blocks, per-example Jacobians elsewhere), float32,
  32x32 block between two input batches; the cases of tools/nt_oracle/bench_nt_empirical.py, whose best
  neural-tangents implementation gives the ratio column (target >= 1x)."""
  description, shape, spec = EMPIRICAL_CASES[name]
  rng = np.random.default_rng(SEED)
  x1, x2 = (rng.standard_normal((EMPIRICAL_BLOCK,) + shape).astype("float32") for _ in range(2))
  width = EMPIRICAL_WIDTH if name == "fc" else EMPIRICAL_CHANNELS
  model = spec().keras_model(width=width, input_shape=shape, num_outputs=EMPIRICAL_OUTPUTS, parameterization="ntk",
                             seed=SEED)
  start = time.perf_counter()
  if not SMOKE:
    nets.empirical_ntk(model, x1, x2, batch_size=EMPIRICAL_BLOCK)
  first_call_s = time.perf_counter() - start
  out, median, calls = _median_call_s(benchmark, nets.empirical_ntk, model, x1, x2,
                                      batch_size=EMPIRICAL_BLOCK)
  assert np.all(np.isfinite(out))
  n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  rate = EMPIRICAL_BLOCK**2 / median
  nt = nt_empirical_entries_per_s(name)
  flops = empirical_ntk_flops_per_entry(model, EMPIRICAL_BLOCK, EMPIRICAL_BLOCK, traced=out.ndim == 2)
  row = {"case": f"empirical_ntk_{name}", "description": f"empirical NTK {description}, {n_params} params",
         "dtype": "float32", "entries_per_s": rate, "flops_per_entry": flops, "gflops_per_s": rate * flops / 1e9,
         "first_call_s": first_call_s, "median_s": median, "calls_per_round": calls, "nt_entries_per_s": nt,
         "ratio_to_nt": None if nt is None else rate / nt}
  benchmark.extra_info.update(row)
  RESULTS.append(row)
