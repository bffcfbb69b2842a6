"""Specs and point functions the distributed tests hand to Beam workers (importable by name from the repo root)."""
import time

import numpy as np

from harness import nets

TILE_DELAY_S = 1.0


def cnn_spec():
  return nets.serial(nets.Conv(3, w_std=1.5, b_std=0.05), nets.Relu(), nets.Conv(3, w_std=1.5, b_std=0.05),
                     nets.Relu(), nets.GlobalAvgPool(), nets.Dense(w_std=1.5))


def images(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, 4, 4, 3))


class SlowSpec:
  """A real spec whose every kernel call first sleeps TILE_DELAY_S: time to kill a run between tiles."""

  def __init__(self, spec):
    self.spec = spec

  def describe(self):
    return self.spec.describe()

  def kernel(self, x1, x2=None, get=("nngp", "ntk"), dtype="float64"):
    time.sleep(TILE_DELAY_S)
    return self.spec.kernel(x1, x2, get=get, dtype=dtype)


def readout_moments(width: int, seed: int) -> dict:
  """A sweep point: the empirical NNGP of one finite Dense-ReLU net (width, seed) on fixed inputs."""
  spec = nets.serial(nets.Dense(w_std=1.5, b_std=0.1), nets.Relu(), nets.Dense(w_std=1.5))
  x = np.random.default_rng(0).normal(size=(3, 5))
  model = spec.keras_model(width=width, input_shape=(5,), num_outputs=4, seed=seed, dtype="float64")
  return {"nngp": nets.empirical_nngp(model, x)}
