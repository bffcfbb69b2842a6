"""Rounding bounds (harness.precision): unit roundoffs, the stored rule, and the slope's propagated bound."""
import numpy as np
import pytest

from harness import precision, stats


def test_unit_roundoff_is_half_the_machine_epsilon():
  assert precision.unit_roundoff("float32") == 2.0 ** -24
  assert precision.unit_roundoff("float64") == 2.0 ** -53
  with pytest.raises(ValueError, match="float32, float64"):
    precision.unit_roundoff("bfloat16")


def test_rounding_rule_from_labels_and_view():
  by_depth = precision.Rounding(lambda labels, view: 8 * labels["L"] + view["extra"], relative=False)
  assert by_depth.rule({"L": 4}, {"extra": 3}) == {"ulps": 35.0, "relative": False}
  assert by_depth.bound("float32", 123.0, {"L": 4}, {"extra": 3}) == 35.0 * 2.0 ** -24   # absolute: no |value|
  assert precision.Rounding(10).bound("float64", -4.0) == 40.0 * 2.0 ** -53
  with pytest.raises(ValueError, match="finite"):
    precision.Rounding(lambda labels, view: float("nan")).rule()


def test_rounding_bound_adds_each_precision():
  rule = {"ulps": 10.0, "relative": True}
  assert precision.rounding_bound(rule, 2.0, "float32", "float64") == 20.0 * (2.0 ** -24 + 2.0 ** -53)
  assert precision.rounding_bound(rule, 2.0) == 0.0


def test_log_log_slope_bound_is_attained_by_the_worst_signs():
  """Moving each point by its relative bound with the sign of its least-squares weight moves the fitted slope
  by sum |w_i| d_i (to first order): the bound is exact, not loose, for the fit itself."""
  x = np.array([4.0, 8.0, 16.0, 32.0, 64.0])
  y = 0.02 / x * (1 + 0.01 * np.arange(5))
  relative = np.array([1.0, 2.0, 3.0, 5.0, 8.0]) * 1e-6
  bound = precision.log_log_slope_ulps(x, relative)
  logs = np.log(x)
  signs = np.sign(logs - logs.mean())
  moved = stats.fit_power_law(x, y * (1 + signs * relative)).slope - stats.fit_power_law(x, y).slope
  assert moved == pytest.approx(bound, rel=1e-4)
