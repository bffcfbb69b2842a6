"""Closed forms of `commutativity`, stated once: used by its claims and written as `theory` reference entries.

`python -m harness theory` writes `reference_entries(config)` into reference_results/commutativity/<tier>.json
for every tier that has a reference file (and `bless` refreshes them); `--check` exits 1 when a file differs.
Only exact closed forms live here: values a derivation fixes, with tolerances for float64 rounding.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from harness.families import Family

from benchmarks.commutativity import families as F

# float64 recursions of at most a few hundred steps: a few hundred ulps at most.
ROUNDING_RTOL = 1e-12
FLOW_RTOL = 1e-10      # scipy solve_ivp at rtol 1e-12 over t in [0, 1]
RESIDUAL_FLOW = "harness/theory/residual_flow.py"
HAYOU_YANG = ("Hayou & Yang 2023, Width and Depth Limits Commute in Residual Networks, arXiv 2302.00453 (the residual "
              "net and its limiting covariance flow)")
CHO_SAUL = "Cho & Saul 2009, Kernel Methods for Deep Learning, Eq. 6 (n = 1): E[relu(u)^2] = q / 2"


@dataclasses.dataclass(frozen=True)
class ClosedForm:
  """value(**labels) of the metrics of `family` selected by `labels`, with its derivation and citation."""
  family: Family
  labels: dict[str, Any]
  value: Callable[..., float]
  formula: str
  derivation: str
  rtol: float = ROUNDING_RTOL
  citation: str = f"{HAYOU_YANG}; {CHO_SAUL}"

  def entry(self, **labels: Any) -> dict[str, Any]:
    """A reference entry with theory provenance for the metric with these (and the fixed) labels."""
    labels = {**self.labels, **labels}
    tolerance = {"kind": "relative", "rtol": self.rtol}
    if self.family.rounding is not None:  # computed in the run's precision: its rounding bound (families.py)
      tolerance["rounding"] = self.family.rounding.rule(labels)
    return {"metric": self.family.name(**labels), "value": float(self.value(**labels)), "tolerance": tolerance,
            "provenance": {"kind": "theory", "derivation": self.derivation, "citation": self.citation}}


RELU_FLOW_VARIANCE = ClosedForm(
    F.LIMIT_VAR_RATIO, {"act": "relu"}, lambda **_: math.exp(0.5), "e^(1/2)",
    f"ReLU: the flow's variance obeys dq/dt = E[relu(u)^2] = q/2, so q(1) = e^(1/2) q(0) ({RESIDUAL_FLOW})",
    rtol=FLOW_RTOL)


def _finite_depth(scale: str, formula: str, value: Callable[[int], float], how: str) -> ClosedForm:
  return ClosedForm(F.IW_VAR_RATIO, {"act": "relu", "scale": scale}, lambda L, **_: value(L), formula,
                    f"ReLU at infinite width, K_l = K_(l-1) + s^2 E[relu relu]: {how} for every input ({RESIDUAL_FLOW}: "
                    "relu_finite_depth_variance)")


RELU_VAR_RATIO = {
    "inverse_sqrt_depth": _finite_depth("inverse_sqrt_depth", "(1 + 1/(2L))^L", lambda L: (1.0 + 0.5 / L) ** L,
                                        "s = L^(-1/2): each block adds s^2 q/2, so q_L / q_0 = (1 + 1/(2L))^L"),
    "one": _finite_depth("one", "1.5^L", lambda L: 1.5 ** L, "s = 1: each block adds q/2, so q_L / q_0 = 1.5^L"),
    "inverse_depth": _finite_depth("inverse_depth", "(1 + 1/(2 L^2))^L", lambda L: (1.0 + 0.5 / L**2) ** L,
                                   "s = 1/L: each block adds q/(2 L^2), so q_L / q_0 = (1 + 1/(2 L^2))^L"),
}


def reference_entries(config) -> list[dict[str, Any]]:
  """The theory entries of a tier: the flow's variance limit and q_L / q_0 at the tier's kernel depths."""
  entries = [RELU_FLOW_VARIANCE.entry()]
  for closed_form in RELU_VAR_RATIO.values():
    entries.extend(closed_form.entry(L=depth) for depth in config.kernel_depths)
  return entries
