"""Finite-net training throughput: harness.training.train (the SGD loop of pooling's and finite_vs_infinite's finite
nets) and harness.training.gradient_descent (full batch) against a plain compiled Keras `fit` on the same model,
data and optimizer.

Run (not part of `make test`; part of `make bench`):

    .venv/bin/python -m pytest benchmarks/perf/test_training_throughput.py --benchmark-enable -p no:xdist -s

Model: pooling's finite CNN-GAP (benchmarks/pooling/architectures.py: DEPTH x (Conv 3x3 + ReLU), global average
pooling, Dense), WIDTH channels, on N_TRAIN 8x8x3 float32 images with 10 outputs, loss 1/(2 B k) |f - y|^2, plain
SGD. Cases: minibatch (BATCH, shuffled each epoch: `train` against `compile` + `fit(batch_size=BATCH, shuffle=True)`),
and full batch (`gradient_descent` against `fit(batch_size=N_TRAIN)`). Timing as the experiments train: a round is
one fresh net trained for EPOCHS epochs, compilation included on both sides (`train` also scores the net on 8 test
examples at the end, as it always does); the median over ROUNDS rounds of steps / wall seconds, after one
untimed round (the first XLA/TF compilations of the process). Target: harness >= TARGET_RATIO x Keras.
"""
from __future__ import annotations

import os
import statistics
import time

import keras
import numpy as np
import pytest

from benchmarks.perf.test_kernel_throughput import forward_flops
from benchmarks.pooling.architectures import architecture
from harness import training

SMOKE = os.environ.get("HARNESS_BENCH_SMOKE") == "1"   # make bench-smoke: the code runs, nothing is measured
WIDTH, DEPTH, N_TRAIN, BATCH, OUTPUTS, SHAPE = 128, 3, 1024, 64, 10, (8, 8, 3)
EPOCHS, ROUNDS = (1, 1) if SMOKE else (8, 3)
LEARNING_RATE = 0.05
TARGET_RATIO = 1.0
SEED = 0

RESULTS: list[dict] = []  # rows of the table printed by conftest.pytest_terminal_summary


def _data():
  rng = np.random.default_rng(SEED)
  n = BATCH * 2 if SMOKE else N_TRAIN
  x = rng.standard_normal((n,) + SHAPE).astype(np.float32)
  y = (np.eye(OUTPUTS)[rng.integers(0, OUTPUTS, n)] - 1.0 / OUTPUTS).astype(np.float32)
  return x, y


def _model() -> keras.Model:
  return architecture("cnn_gap", DEPTH).keras_model(width=WIDTH, input_shape=SHAPE, num_outputs=OUTPUTS, seed=SEED,
                                                    dtype="float32")


def _timed_rounds(train_fresh_net, steps: int) -> float:
  """Median steps/s over ROUNDS rounds, each a fresh net trained for EPOCHS epochs, after one untimed round."""
  train_fresh_net()
  rates = []
  for _ in range(ROUNDS):
    start = time.perf_counter()
    train_fresh_net()
    rates.append(steps / (time.perf_counter() - start))
  return statistics.median(rates)


def _keras_fit(x, y, batch: int) -> float:
  def run():
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=training.HalfMeanSquaredError())
    model.fit(x, y, batch_size=batch, epochs=EPOCHS, shuffle=True, verbose=0)
  return _timed_rounds(run, EPOCHS * (len(x) // batch))


def _harness(x, y, batch: int | None) -> float:
  if batch is None:
    return _timed_rounds(lambda: training.gradient_descent(_model(), x, y, LEARNING_RATE, EPOCHS), EPOCHS)
  config = training.TrainConfig(learning_rate=LEARNING_RATE, epochs=EPOCHS, batch_size=batch)
  return _timed_rounds(lambda: training.train(_model(), x, y, x[:8], y[:8], config, verbose=False),
                       EPOCHS * (len(x) // batch))


@pytest.mark.parametrize("case", ["minibatch", "full_batch"])
def test_training_throughput(benchmark, case):
  x, y = _data()
  batch = BATCH if case == "minibatch" else None
  ours = benchmark.pedantic(lambda: _harness(x, y, batch), rounds=1, iterations=1)
  theirs = _keras_fit(x, y, BATCH if batch else len(x))
  step_batch = BATCH if batch else len(x)
  model = _model()
  params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  flops = 3 * step_batch * forward_flops(model) + 2 * params   # forward + backward ~ 3 x forward; w -= lr g
  row = {"case": f"cnn_gap{WIDTH}_{case}", "backend": keras.backend.backend(), "harness_steps_per_s": ours,
         "keras_fit_steps_per_s": theirs, "ratio": ours / theirs, "batch": step_batch, "flops_per_step": flops,
         "gflops_per_s": ours * flops / 1e9, "keras_gflops_per_s": theirs * flops / 1e9, "target_ratio": TARGET_RATIO}
  benchmark.extra_info.update(row)
  RESULTS.append(row)
