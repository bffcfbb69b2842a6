"""The residual net of Hayou & Yang 2023 in the architecture library: its spec, infinite-width kernel, Keras nets."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def residual_profile(activation: str, branch_scale: float):
  """Y_0 = W_in x, then any number of blocks x + s Dense(phi(x)) (harness.nets, NTK parameterisation, no biases)."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  phi = {"relu": nets.Relu, "erf": nets.Erf}[activation]()
  block = nets.residual(nets.serial(phi, nets.Dense(w_std=1.0, b_std=0.0)), branch_scale=branch_scale)
  return nets.DepthProfile(block=block, head=(nets.Dense(w_std=1.0, b_std=0.0),))


def residual_spec(activation: str, depth: int, branch_scale: float):
  """The net of `residual_profile` with L = depth blocks."""
  return residual_profile(activation, branch_scale).spec(depth)


def infinite_width_kernels(activation: str, x: np.ndarray, depths: Sequence[int],
                           branch_scale: Callable[[int], float], dtype: str) -> dict[int, np.ndarray]:
  """{L: NNGP of Y_L between the rows of x} from harness.nets, with branch scale s(L).

  The L blocks run as one loop in a compiled program (`nets.DepthProfile`), so compile time does not grow with L
  (an unrolled 256-block net compiles for minutes). A scale that does not depend on L gives every depth from one
  pass; else each L is its own net.
  """
  scales = {depth: branch_scale(depth) for depth in depths}
  groups = ([tuple(depths)] if len(set(scales.values())) == 1 else [(depth,) for depth in depths])
  out = {}
  for group in groups:
    kernels = residual_profile(activation, scales[group[0]]).kernel(x, depths=group, get="nngp", dtype=dtype)
    out.update({depth: np.asarray(k, dtype=np.float64) for depth, k in kernels.items()})
  return out


class KerasResidualNet:
  """The finite net of `residual_spec` built by `spec.keras_model`, and its last residual block's output Y_L.

  `keras_model` requires a Dense readout, so the spec gets one (num_outputs=1, unused); Y_L is the output of
  the last `residual_*` Add layer, read through a second keras.Model sharing the layers. `sample` redraws the
  weights in place (`harness.nets.reinitialize`, as keras_model(seed=...) would draw them) instead of
  rebuilding the model.
  """

  def __init__(self, activation: str, width: int, depth: int, branch_scale: float, input_dim: int, dtype: str):
    import keras  # pylint: disable=import-outside-toplevel
    from harness import nets  # pylint: disable=import-outside-toplevel
    self.width, self.depth, self.dtype = width, depth, dtype
    spec = nets.serial(residual_spec(activation, depth, branch_scale), nets.Dense(w_std=1.0, b_std=0.0))
    self.model = spec.keras_model(width=width, input_shape=(input_dim,), num_outputs=1, dtype=dtype)
    blocks = [layer for layer in self.model.layers if layer.name.startswith("residual_")]
    if len(blocks) != depth:
      raise RuntimeError(f"expected {depth} residual Add layers, found {len(blocks)}")
    self.features = keras.Model(self.model.inputs[0], blocks[-1].output)
    if str(self.model.trainable_variables[0].dtype).split(".")[-1] != dtype:
      raise RuntimeError(f"weights are {self.model.trainable_variables[0].dtype}, not {dtype}")

  def sample(self, x: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """(len(seeds), width, P) Y_L of the rows of x, one net per seed (the layout of `simulate_gram`)."""
    from harness import nets  # pylint: disable=import-outside-toplevel
    x = np.asarray(x, dtype=self.dtype)
    out = []
    for seed in seeds:
      nets.reinitialize(self.model, seed)
      y = np.asarray(self.features.predict_on_batch(x))   # (P, width)
      out.append(y.T)
    return np.stack(out).astype(np.float64)
