"""Float precisions the suite runs in, named once, and the rounding bounds that make checks precision-aware.

A deterministic quantity computed in float32 differs from its float64 reference by rounding, not by a
regression. `Rounding` states how much: a first-order forward error bound (Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed. 2002, Lemma 3.1 and section 3.1: n roundings of relative size <= u each give a
relative error <= gamma_n = n u / (1 - n u) ~ n u) in units of the unit roundoff u of the run's precision,

    |computed - exact| <= ulps x u(dtype) x (|value| if relative else 1),

with `ulps` (the condition factor: the number of roundings on the path times the amplification of the maps they
pass through) derived per metric family from the computation, and stated with it (`derivation`). A reference
check compares two computations, the run's and the reference's, so it adds the bound at both precisions
(`references.check`); claims asserting identities ("the library kernel is the recursion") use the same bound at
the run's precision. A perturbation larger than the bound still fails in float32 (tests/harness/test_precision.py).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import numpy as np

DTYPES = ("float32", "float64")
# Unit roundoff u = eps / 2 (round to nearest): float32 2^-24 = 5.96e-8, float64 2^-53 = 1.11e-16.
UNIT_ROUNDOFF = {dtype: float(np.finfo(dtype).eps) / 2.0 for dtype in DTYPES}


def check_dtype(dtype: str, error: type[Exception] = ValueError, what: str = "dtype") -> str:
  """`dtype` if it is one of DTYPES, else `error` with one line naming the choices."""
  if dtype not in DTYPES:
    raise error(f"{what} must be one of {', '.join(DTYPES)}, got {dtype!r}")
  return dtype


def unit_roundoff(dtype: str) -> float:
  return UNIT_ROUNDOFF[check_dtype(dtype)]


UlpsFn = Callable[..., float]


@dataclasses.dataclass(frozen=True)
class Rounding:
  """A deterministic metric's rounding error bound: `ulps` unit roundoffs, of |value| (`relative`) or absolute.

  `ulps`: a number, or `fn(labels, view)` of the metric's labels (a dict) and the run's metrics (a
  harness.families.MetricView, for bounds that depend on other metrics of the run, such as a slope's points;
  None where no run is at hand): evaluated when a run is blessed and stored in the reference entry's rule as
  a number.
  """
  ulps: float | UlpsFn
  relative: bool = True
  derivation: str = ""

  def ulps_at(self, labels: Mapping[str, Any] | None = None, view: Any = None) -> float:
    if not callable(self.ulps):
      return float(self.ulps)
    return float(self.ulps(dict(labels or {}), view))

  def rule(self, labels: Mapping[str, Any] | None = None, view: Any = None) -> dict[str, Any]:
    """The `rounding` field of a reference rule: {"ulps": number rounded up to 3 significant digits, "relative"}
    (so a bound derived from a run's values and from the blessed copies of them is stored the same)."""
    ulps = self.ulps_at(labels, view)
    if not math.isfinite(ulps) or ulps < 0:
      raise ValueError(f"rounding ulps must be finite and >= 0, got {ulps}")
    return {"ulps": _round_up(ulps), "relative": self.relative}

  def bound(self, dtype: str, value: float = 1.0, labels: Mapping[str, Any] | None = None, view: Any = None) -> float:
    """The bound at `dtype` for a metric of magnitude `value` (ignored when absolute)."""
    return rounding_bound(self.rule(labels, view), value, dtype)


def _round_up(x: float, digits: int = 3) -> float:
  if x == 0:
    return 0.0
  scale = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
  return float(f"{math.ceil(x / scale - 1e-9) * scale:.{digits}g}")


def rounding_bound(rule: Mapping[str, Any], value: float, *dtypes: str) -> float:
  """ulps x (sum of the unit roundoffs of `dtypes`) x (|value| if relative else 1), for a stored rounding rule."""
  scale = abs(value) if rule.get("relative", True) else 1.0
  return float(rule["ulps"]) * sum(unit_roundoff(d) for d in dtypes) * scale


def log_log_slope_ulps(x, relative_ulps) -> float:
  """Rounding bound (in u, absolute) of the least-squares slope of log y on log x, given each y's relative bound.

  slope = sum_i w_i log y_i with w_i = (log x_i - mean) / sum_j (log x_j - mean)^2, and a relative error d_i of
  y_i moves log y_i by d_i (first order), so the slope moves by at most sum_i |w_i| d_i.
  """
  logs = np.log(np.asarray(x, dtype=np.float64))
  centred = logs - logs.mean()
  weights = centred / np.sum(centred ** 2)
  return float(np.sum(np.abs(weights) * np.asarray(relative_ulps, dtype=np.float64)))
