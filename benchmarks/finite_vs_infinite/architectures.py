"""The four architectures of `finite_vs_infinite` as harness.nets specs: one description gives the Keras net at width
n (NTK parameterisation) and its analytic NNGP / NTK.

ReLU with sigma_w^2 = 2, sigma_b = 0.1 (He-critical, as in Arora et al. 2019 and the pooling experiment); 3x3 SAME
convolutions. The residual CNN: a convolutional stem, `depth` blocks x + (1/sqrt(depth)) Conv(ReLU(x)) (branches
scaled so the kernel stays O(1) in depth, Hayou & Yang 2023), ReLU, global average pooling, readout.
"""
from __future__ import annotations

import math

W_STD, B_STD = math.sqrt(2.0), 0.1
FILTER_SIZE = 3
PRECISION_W_STD, PRECISION_B_STD = math.sqrt(2.0), 0.0  # the precision study's FCN: no bias (module docstring of phases)


def architecture(name: str, depth: int, w_std: float = W_STD, b_std: float = B_STD):
  """One spec per architecture name (config.ARCHITECTURES) with `depth` hidden layers or residual blocks."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  dense = lambda: nets.Dense(w_std=w_std, b_std=b_std)
  conv = lambda: nets.Conv(filter_size=FILTER_SIZE, w_std=w_std, b_std=b_std)
  if name == "fcn":
    return nets.serial(nets.Flatten(), *([dense(), nets.Relu()] * depth), dense())
  if name in ("cnn_flatten", "cnn_gap"):
    readout = nets.GlobalAvgPool() if name == "cnn_gap" else nets.Flatten()
    return nets.serial(*([conv(), nets.Relu()] * depth), readout, dense())
  if name == "resnet":
    block = nets.residual(nets.serial(nets.Relu(), conv()), branch_scale=1.0 / math.sqrt(depth))
    return nets.serial(conv(), *([block] * depth), nets.Relu(), nets.GlobalAvgPool(), dense())
  raise ValueError(f"unknown architecture {name!r}")
