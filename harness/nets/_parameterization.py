"""Initialisation scales, forward multipliers and muP learning-rate multipliers of the affine layers.

For a Dense/Conv layer with fan_in = C (Dense) or C * filter area (Conv), out = a x W + b_mult b, where:

  parameterization  W init           a                  b init        b_mult
  "ntk"             N(0, 1)          w_std/sqrt(fan_in)  N(0, 1)      b_std       (Jacot et al. 2018, arXiv 1806.07572)
  "standard"        N(0, w^2/fan_in) 1                   N(0, b_std^2) 1
  "mup" hidden      as "ntk"
  "mup" readout     N(0, 1)          w_std/fan_in        N(0, 1)      b_std/sqrt(fan_in)

All three give the same output distribution at initialisation for hidden layers; the muP readout is the NTK
readout divided by sqrt(fan_in), so f_mup = f_ntk / sqrt(fan_in) and fan_in * Cov(f_mup) converges to the
NNGP. This is muP (Yang & Hu 2021, "Tensor Programs IV", arXiv 2011.14522, Sec. 5 and Table 3: readout
a_{L+1} = 1/2 + b_{L+1} = 1/2, i.e. variance 1/n^2) written in the NTK form that the abc-symmetry allows
(W = n^{-a} w, w ~ N(0, n^{-2b}); (a, b, c) -> (a + t, b - t, c - 2t) for SGD, (a + t, b - t, c - t) for Adam,
TP4 Eq. (5)); it is also the "output multiplier 1/fan_in, init std 1" form of Tensor Programs V (Yang et al.
2022, arXiv 2203.03466, Table 8; microsoft/mup issue #7). The readout bias carries 1/sqrt(fan_in) too so that
the whole readout, not only its weight part, is the NTK readout scaled by 1/sqrt(fan_in).

muP learning-rate multipliers (`lr_exponents`; per variable of a model: harness/nets/_layers.py,
`mup_lr_multipliers`), per parameter, with r = width / base_width (`width` the
hidden width of `keras_model`: units/channels of input and hidden layers, and what the readout's fan_in grows
with), derived from TP5 Table 3 through the symmetry above
(the `mup` package's MuSGD/MuAdam give the same scalings in their own parameterization):

  parameter                SGD   Adam
  input-layer weights      r     1
  hidden weights           r     r^(-1/2)
  readout weights          r     1
  biases (input/hidden)    r     1
  readout bias             r     r^(1/2)

(SGD: every parameter's rate grows like the width in this NTK-form muP, TP4 Sec. 5; a base learning rate
tuned at base_width then transfers.)
"""
from __future__ import annotations

import dataclasses
import math

PARAMETERIZATIONS = ("ntk", "standard", "mup")
ROLES = ("input", "hidden", "readout")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class AffineScaling:
  weight_init_std: float
  bias_init_std: float
  weight_multiplier: float
  bias_multiplier: float


def check_parameterization(parameterization: str) -> None:
  if parameterization not in PARAMETERIZATIONS:
    raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")


def affine_scaling(parameterization: str, role: str, fan_in: int, w_std: float, b_std: float) -> AffineScaling:
  """Init std and forward multipliers of one Dense/Conv layer (module docstring table)."""
  check_parameterization(parameterization)
  if role not in ROLES:
    raise ValueError(f"role must be one of {ROLES}, got {role!r}")
  if parameterization == "standard":
    return AffineScaling(w_std / math.sqrt(fan_in), b_std, 1.0, 1.0)
  if parameterization == "mup" and role == "readout":
    return AffineScaling(1.0, 1.0, w_std / fan_in, b_std / math.sqrt(fan_in))
  return AffineScaling(1.0, 1.0, w_std / math.sqrt(fan_in), b_std)


# (weight exponent, bias exponent) of r per (optimizer, role): multiplier = r ** exponent.
_LR_EXPONENTS = {
    ("sgd", "input"): (1.0, 1.0), ("sgd", "hidden"): (1.0, 1.0), ("sgd", "readout"): (1.0, 1.0),
    ("adam", "input"): (0.0, 0.0), ("adam", "hidden"): (-0.5, 0.0), ("adam", "readout"): (0.0, 0.5),
}


def lr_exponents(optimizer: str, role: str) -> tuple[float, float]:
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
  return _LR_EXPONENTS[(optimizer, role)]

