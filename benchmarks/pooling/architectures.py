"""The three architectures of `pooling` as harness.nets specs (one description: finite net and kernel)."""
from __future__ import annotations

import math

W_STD, B_STD = math.sqrt(2.0), 0.1   # ReLU nets for the CIFAR-10 accuracy parts (Arora et al. 2019: sigma_w2 = 2)
FILTER_SIZE = 3


def architecture(name: str, depth: int, nonlinearity: str = "relu", w_std: float = W_STD, b_std: float = B_STD,
                 padding: str = "SAME"):
  """One spec (harness.nets) per architecture: `depth` hidden layers, then the readout Dense."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  act = {"relu": nets.Relu, "erf": nets.Erf}[nonlinearity]
  if name == "fcn":
    return nets.serial(nets.Flatten(), *([nets.Dense(w_std=w_std, b_std=b_std), act()] * depth),
                       nets.Dense(w_std=w_std, b_std=b_std))
  conv = [nets.Conv(filter_size=FILTER_SIZE, w_std=w_std, b_std=b_std, padding=padding), act()] * depth
  readout = nets.GlobalAvgPool() if name == "cnn_gap" else nets.Flatten()
  return nets.serial(*conv, readout, nets.Dense(w_std=w_std, b_std=b_std))


def depth_profile(name: str, nonlinearity: str = "relu", w_std: float = W_STD, b_std: float = B_STD,
                  padding: str = "SAME"):
  """The nets `architecture(name, depth, ...)` of every depth as one harness.nets.DepthProfile (their kernels at
  many depths from one pass)."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  act = {"relu": nets.Relu, "erf": nets.Erf}[nonlinearity]
  dense = nets.Dense(w_std=w_std, b_std=b_std)
  if name == "fcn":
    return nets.DepthProfile(block=nets.serial(dense, act()), head=(nets.Flatten(),), readout=(dense,))
  conv = nets.Conv(filter_size=FILTER_SIZE, w_std=w_std, b_std=b_std, padding=padding)
  readout = nets.GlobalAvgPool() if name == "cnn_gap" else nets.Flatten()
  return nets.DepthProfile(block=nets.serial(conv, act()), readout=(readout, dense))
