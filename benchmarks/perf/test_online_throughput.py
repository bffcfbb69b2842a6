"""Online training throughput: steps/s of harness.online.train_online against a plain compiled Keras loop.

Run (not part of `make test`; part of `make bench`):

    make bench                                                                # every benchmark, tables at the end
    .venv/bin/python -m pytest benchmarks/perf/test_online_throughput.py --benchmark-enable -p no:xdist -s
    KERAS_BACKEND=jax .venv/bin/python -m pytest benchmarks/perf/test_online_throughput.py --benchmark-enable \
        -p no:xdist -s                                                        # the JAX backend

Model: a muP MLP (harness.nets: Flatten, Dense(WIDTH), ReLU, Dense(WIDTH), ReLU, Dense(OUTPUTS)) on 8x8x3
float32 inputs, batch BATCH, the loss "mse" (1/(2 B k) sum (f - y)^2, harness.training.HalfMeanSquaredError
for Keras). Cases: heavy-ball SGD (momentum MOMENTUM) with muP multipliers against keras.optimizers.SGD(lr,
momentum), and Adam against keras.optimizers.Adam, each with the train step XLA-compiled or not (TensorFlow's
jit_compile; under JAX both are jax.jit and only True runs). The same batch is fed every step (what is timed is
the step, not a data pipeline).

Timing, steady state: train_online runs STEPS steps logged at (0, WARMUP_STEPS, STEPS); its `segment_s` of the
last segment (the updates after the first WARMUP_STEPS, which hold the compilation, until the losses are read
back) gives steps/s; median over ROUNDS runs. Keras: after WARMUP_STEPS `train_on_batch` calls (compilation),
ROUNDS rounds of STEPS - WARMUP_STEPS calls, median. Target: train_online >= TARGET_RATIO x Keras' steps/s.
"""
from __future__ import annotations

import itertools
import os
import statistics
import time

import keras
import numpy as np
import pytest

from harness import nets, online, training

WIDTH, OUTPUTS, BATCH, INPUT_SHAPE = 512, 10, 128, (8, 8, 3)
BASE_WIDTH = 128  # muP multipliers relative to this width (SGD: r = 4 for every variable)
LEARNING_RATE, MOMENTUM = 0.01, 0.9
STEPS, WARMUP_STEPS, ROUNDS = 400, 50, 5
if os.environ.get("HARNESS_BENCH_SMOKE") == "1":   # make bench-smoke (CI): the code runs, nothing is measured
  STEPS, WARMUP_STEPS, ROUNDS = 20, 10, 1
TARGET_RATIO = 0.8
SEED = 0

RESULTS: list[dict] = []  # rows of the table printed by conftest.pytest_terminal_summary


def _model() -> keras.Model:
  layer = lambda: nets.serial(nets.Dense(w_std=2.0**0.5, b_std=0.1), nets.Relu())  # noqa: E731
  spec = nets.serial(nets.Flatten(), layer(), layer(), nets.Dense(w_std=1.0, b_std=0.1))
  return spec.keras_model(width=WIDTH, input_shape=INPUT_SHAPE, num_outputs=OUTPUTS, parameterization="mup",
                          seed=SEED, dtype="float32")


def _batch():
  rng = np.random.default_rng(SEED)
  x = rng.standard_normal((BATCH,) + INPUT_SHAPE).astype(np.float32)
  y = (np.eye(OUTPUTS)[rng.integers(0, OUTPUTS, BATCH)] - 1.0 / OUTPUTS).astype(np.float32)
  return x, y


OPTIMIZER_FLOPS_PER_PARAM = {"sgd": 4, "adam": 12}   # momentum: v = mu v + g, w -= r lr v; Adam's moments and step


def step_flops(model: keras.Model, optimizer: str) -> int:
  """FLOPs of one training step: forward + backward ~ 3 x the forward pass per example (Kaplan et al. 2020,
  arXiv 2001.08361, section 2.1: 6 N per token vs 2 N forward), times the batch, plus the optimizer's update."""
  from benchmarks.perf.test_kernel_throughput import forward_flops  # pylint: disable=import-outside-toplevel
  params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  return 3 * BATCH * forward_flops(model) + OPTIMIZER_FLOPS_PER_PARAM[optimizer] * params


def _jit_cases() -> list[bool]:
  return [True] if keras.backend.backend() == "jax" else [True, False]


def _online_steps_per_s(benchmark, optimizer: str, jit_compile: bool) -> tuple[float, float]:
  """(median steady-state steps/s, first run's seconds for the first WARMUP_STEPS steps incl. compilation)."""
  x, y = _batch()
  model = _model()
  multipliers = nets.mup_lr_multipliers(model, BASE_WIDTH, optimizer)
  config = online.OnlineConfig(steps=STEPS, learning_rate=LEARNING_RATE if optimizer == "sgd" else 1e-3,
                               optimizer=optimizer, momentum=MOMENTUM if optimizer == "sgd" else 0.0,
                               jit_compile=jit_compile)
  results = []

  def run():
    result = online.train_online(model, itertools.repeat((x, y), STEPS), x[:8], y[:8], config, multipliers,
                                 log_steps=(0, WARMUP_STEPS, STEPS))
    assert not result.diverged and result.steps_done == STEPS
    results.append(result)

  benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
  rates = [(STEPS - WARMUP_STEPS) / r.segment_s[-1] for r in results]
  return statistics.median(rates), results[0].segment_s[1]


def _keras_steps_per_s(optimizer: str, jit_compile: bool) -> tuple[float, float]:
  x, y = _batch()
  model = _model()
  opt = (keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM) if optimizer == "sgd"
         else keras.optimizers.Adam(1e-3))
  model.compile(optimizer=opt, loss=training.HalfMeanSquaredError(), jit_compile=jit_compile)
  start = time.perf_counter()
  for _ in range(WARMUP_STEPS):
    model.train_on_batch(x, y)
  first_s = time.perf_counter() - start
  rates = []
  for _ in range(ROUNDS):
    start = time.perf_counter()
    for _ in range(STEPS - WARMUP_STEPS):
      loss = model.train_on_batch(x, y)
    rates.append((STEPS - WARMUP_STEPS) / (time.perf_counter() - start))
  assert np.isfinite(np.asarray(loss)).all()
  return statistics.median(rates), first_s


@pytest.mark.parametrize("jit_compile", _jit_cases(), ids=lambda j: f"jit={j}")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_online_throughput(benchmark, optimizer, jit_compile):
  ours, ours_first = _online_steps_per_s(benchmark, optimizer, jit_compile)
  theirs, theirs_first = _keras_steps_per_s(optimizer, jit_compile)
  flops = step_flops(_model(), optimizer)
  row = {"case": f"mlp{WIDTH}_{optimizer}", "backend": keras.backend.backend(), "jit_compile": jit_compile,
         "online_steps_per_s": ours, "keras_steps_per_s": theirs, "ratio": ours / theirs,
         "flops_per_step": flops, "gflops_per_s": ours * flops / 1e9, "keras_gflops_per_s": theirs * flops / 1e9,
         "online_warmup_s": ours_first, "keras_warmup_s": theirs_first, "batch": BATCH, "width": WIDTH}
  benchmark.extra_info.update(row)
  RESULTS.append(row)
