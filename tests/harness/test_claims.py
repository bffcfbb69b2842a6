"""Claim checks: orderings with significance, intervals, closeness, trends; missing/NaN fail."""
import math

import pytest

from harness import claims
from harness.metrics import Metric


def m(*values, seeds=None):
  return Metric(values=list(values), seeds=list(seeds if seeds is not None else range(len(values))))


def test_greater_needs_significance():
  clear = {"a": m(0.60, 0.61, 0.62, 0.60), "b": m(0.50, 0.51, 0.49, 0.50)}
  noisy = {"a": m(0.60, 0.40, 0.62, 0.45), "b": m(0.50, 0.51, 0.49, 0.50)}
  for test in ("welch", "paired"):
    assert claims.Greater("a", "b", test=test).evaluate(clear).passed
    assert not claims.Greater("a", "b", test=test).evaluate(noisy).passed
    assert not claims.Greater("b", "a", test=test).evaluate(clear).passed
  assert not claims.Greater("a", "b", margin=0.2).evaluate(clear).passed


def test_greater_paired_needs_same_seeds():
  metrics = {"a": m(0.6, 0.61, seeds=[0, 1]), "b": m(0.5, 0.5, seeds=[2, 3])}
  assert not claims.Greater("a", "b", test="paired").evaluate(metrics).passed


def test_greater_deterministic():
  assert claims.Greater("a", "b", test="none").evaluate({"a": m(2.0, seeds=[None]), "b": m(1.0, seeds=[None])}).passed


def test_interval_close_monotone():
  metrics = {"slope": m(-0.52), "x": m(1.0), "y": m(1.05), "d1": m(0.4), "d2": m(0.2), "d3": m(0.21)}
  assert claims.InInterval("slope", -0.6, -0.4).evaluate(metrics).passed
  assert not claims.InInterval("slope", -0.5, None).evaluate(metrics).passed
  assert claims.Close("y", "x", atol=0.06).evaluate(metrics).passed
  assert not claims.Close("y", 1.0, rtol=0.01).evaluate(metrics).passed
  assert not claims.Monotone(("d1", "d2", "d3")).evaluate(metrics).passed
  assert claims.Monotone(("d1", "d2", "d3"), slack=0.02).evaluate(metrics).passed
  assert claims.Monotone(("d3", "d1"), direction="increasing").evaluate(metrics).passed


@pytest.mark.parametrize("check", [
    claims.Greater("a", "b"), claims.InInterval("a", 0, 1), claims.Close("a", 0.5, atol=10),
    claims.Monotone(("a", "b"), slack=10), claims.Predicate("always", lambda ms: (True, ""), names=("a",))])
def test_missing_or_nan_fails(check):
  assert not check.evaluate({"b": m(0.5)}).passed
  assert not check.evaluate({"a": m(math.nan), "b": m(0.5)}).passed


def test_claim_record():
  outcome = claims.Claim("c", "statement", claims.InInterval("a", 0, 1)).evaluate({"a": m(0.5)})
  assert outcome == {"name": "c", "statement": "statement", "check": "a in [0, 1]", "passed": True,
                     "detail": "a = 0.5", "asserted": True}


def test_claims_outside_their_tiers_are_reported_but_not_asserted():
  failing = claims.Claim("c", "statement", claims.InInterval("a", 0, 1), tiers=("small", "paper"))
  metrics = {"a": m(2.0)}
  at_smoke, at_small = failing.evaluate(metrics, "smoke"), failing.evaluate(metrics, "small")
  assert not at_smoke["passed"] and not at_smoke["asserted"]
  assert not at_small["passed"] and at_small["asserted"]
  assert claims.all_passed([at_smoke])
  assert not claims.all_passed([at_smoke, at_small])
  assert claims.verdict(at_smoke) == "not asserted (fails)" and claims.verdict(at_small) == "FAIL"
  assert claims.count([at_smoke, at_small]) == "0/1 (+1 not asserted)"
  # a claim without tiers is asserted everywhere, also when no tier is given
  assert claims.Claim("d", "s", claims.InInterval("a", 0, 1)).evaluate(metrics)["asserted"]


def test_a_predicate_reading_a_missing_metric_fails_cleanly():
  check = claims.Predicate("reads b", lambda metrics: (metrics["b"].mean > 0, "b positive"))
  outcome = check.evaluate({"a": m(1.0)})
  assert not outcome.passed and "'b' missing" in outcome.detail
