"""Claim checks over metric families: orderings with significance, intervals, trends, slopes; missing/NaN
fail; a check that raises is an error naming its claim; a claim naming labels its family lacks fails at load."""
import math

import numpy as np
import pytest

from harness import claims, registry
from harness.families import LARGEST, Family, LabelError, SameAs
from harness.metrics import Metric

A = Family("a/{arm}", choices={"arm": ("x", "y")})
SCALAR = Family("scalar/{what}")
GRID = Family("err/{act}/n={n:d}/L={L:d}")
P = Family("p/{test}")


def m(*values, seeds=None):
  return Metric(values=list(values), seeds=list(seeds if seeds is not None else range(len(values))))


def one(value):
  return Metric(values=[float(value)], seeds=[None])


def test_greater_needs_significance():
  x, y = A.at(arm="x"), A.at(arm="y")
  clear = {"a/x": m(0.60, 0.61, 0.62, 0.60), "a/y": m(0.50, 0.51, 0.49, 0.50)}
  noisy = {"a/x": m(0.60, 0.40, 0.62, 0.45), "a/y": m(0.50, 0.51, 0.49, 0.50)}
  for test in ("welch", "paired"):
    assert claims.Greater(x, y, test=test).evaluate(clear).passed
    assert not claims.Greater(x, y, test=test).evaluate(noisy).passed
    assert not claims.Greater(y, x, test=test).evaluate(clear).passed
  assert not claims.Greater(x, y, margin=0.2).evaluate(clear).passed
  outcome = claims.Greater(x, y, test="paired").evaluate(clear)
  assert outcome.metrics == ("a/x", "a/y")   # the outcome names what it read


def test_greater_paired_needs_same_seeds():
  metrics = {"a/x": m(0.6, 0.61, seeds=[0, 1]), "a/y": m(0.5, 0.5, seeds=[2, 3])}
  assert not claims.Greater(A.at(arm="x"), A.at(arm="y"), test="paired").evaluate(metrics).passed


def test_interval_close():
  metrics = {"scalar/slope": one(-0.52), "scalar/x": one(1.0), "scalar/y": one(1.05)}
  assert claims.InInterval(SCALAR.at(what="slope"), -0.6, -0.4).evaluate(metrics).passed
  assert not claims.InInterval(SCALAR.at(what="slope"), -0.5, None).evaluate(metrics).passed
  assert claims.Close(SCALAR.at(what="y"), SCALAR.at(what="x"), atol=0.06).evaluate(metrics).passed
  assert not claims.Close(SCALAR.at(what="y"), 1.0, rtol=0.01).evaluate(metrics).passed


def _grid(value=lambda n, L: 1.0 / math.sqrt(n), noise=(0.98, 1.0, 1.01, 1.01)):
  return {GRID.name(act="relu", n=n, L=L): Metric([value(n, L) * e for e in noise], [0, 1, 2, 3])
          for n in (16, 64, 256) for L in (4, 16, 64)}


def test_monotone_and_stepwise_decrease_along_a_label():
  metrics = _grid()
  assert claims.StepwiseDecrease(GRID, along="n", per=("act", "L")).evaluate(metrics).passed
  assert not claims.StepwiseDecrease(GRID, along="L", per=("act", "n")).evaluate(metrics).passed  # flat in L
  assert claims.Monotone(GRID, along="n", where={"L": 4}).evaluate(metrics).passed
  assert not claims.Monotone(GRID, along="n", where={"L": 4}, direction="increasing").evaluate(metrics).passed
  metrics[GRID.name(act="relu", n=256, L=64)] = metrics[GRID.name(act="relu", n=64, L=64)]
  assert not claims.StepwiseDecrease(GRID, along="n", per=("act", "L")).evaluate(metrics).passed


def test_power_law_slope_per_seed_and_deterministic():
  per_seed = _grid()
  check = claims.PowerLawSlope(GRID, x="n", interval=(-0.55, -0.45), where={"L": LARGEST})
  outcome = check.evaluate(per_seed)
  assert outcome.passed and "CI" in outcome.detail
  assert not claims.PowerLawSlope(GRID, x="n", interval=(-0.45, -0.4), where={"L": LARGEST}).evaluate(per_seed).passed
  deterministic = {GRID.name(act="relu", n=n, L=n): one(n ** -1.0) for n in (16, 64, 256)}
  diagonal = claims.PowerLawSlope(GRID, x="n", interval=(-1.01, -0.99), where={"L": SameAs("n")})
  assert diagonal.evaluate(deterministic).passed
  below_zero = claims.PowerLawSlope(GRID, x="n", interval=(-math.inf, 0.0), where={"L": LARGEST}, ci_inside=True)
  assert below_zero.evaluate(per_seed).passed
  noisy = _grid(noise=(0.2, 1.0, 3.0, 0.5))   # slopes scattered by seed: the interval reaches above 0
  noisy.update({GRID.name(act="relu", n=256, L=64): Metric([1 / 16 * e for e in (5.0, 0.05, 0.1, 4.0)], [0, 1, 2, 3])})
  assert not below_zero.evaluate(noisy).passed
  slope, ci = claims.power_law_slope([(n, one(n ** -1.0)) for n in (16, 64, 256)])
  assert slope == pytest.approx(-1.0) and ci[0] <= slope <= ci[1]


def test_not_significantly_above_bounds_growth():
  flat = _grid()
  assert claims.NotSignificantlyAbove(GRID, along="L", factor=1.25, per=("act", "n")).evaluate(flat).passed
  grows = _grid(lambda n, L: L / math.sqrt(n))
  assert not claims.NotSignificantlyAbove(GRID, along="L", factor=1.25, per=("act", "n")).evaluate(grows).passed


def test_all_within_p_values_and_theory_agreement():
  metrics = {"p/a": one(0.3), "p/b": one(0.2)}
  assert claims.AllWithin(P, low=0.1).evaluate(metrics).passed
  assert not claims.AllWithin(P, high=0.25).evaluate(metrics).passed
  assert claims.PValuesAbove(P, family_alpha=0.01).evaluate(metrics).passed
  metrics["p/b"] = one(0.004)   # threshold 0.01 / 2
  assert not claims.PValuesAbove(P, family_alpha=0.01).evaluate(metrics).passed
  power = {GRID.name(act="relu", n=1, L=L): one(1.5 ** L) for L in (1, 4, 16)}
  check = claims.AgreesWithTheory(GRID, theory=lambda L, **_: 1.5 ** L, formula="1.5^L", rtol=1e-12)
  assert check.evaluate(power).passed
  power[GRID.name(act="relu", n=1, L=16)] = one(1.5 ** 16 * (1 + 1e-9))
  assert not check.evaluate(power).passed


def test_routes_agree_and_matches_pair_metrics_by_labels():
  route = Family("r/{q}/{method}")
  good = {"r/u/closed": one(1.0), "r/u/quad": one(1.0 + 1e-9)}
  check = claims.RoutesAgree((route,), label="method", a="closed", b="quad", rtol=1e-6)
  assert check.evaluate(good).passed
  assert not check.evaluate({"r/u/closed": one(1.0), "r/u/quad": one(1.1)}).passed
  assert not check.evaluate({"r/u/closed": one(1.0)}).passed
  measured, theory = Family("meas/{act}"), Family("theo/{act}")
  assert claims.Matches(measured, theory, rtol=0.02).evaluate({"meas/relu": one(1.01), "theo/relu": one(1.0)}).passed
  assert not claims.Matches(measured, theory, rtol=0.02).evaluate({"meas/relu": one(1.03), "theo/relu": one(1.0)}).passed


@pytest.mark.parametrize("check", [
    claims.Greater(A.at(arm="x"), A.at(arm="y")), claims.InInterval(A.at(arm="x"), 0, 1),
    claims.Close(A.at(arm="x"), 0.5, atol=10), claims.Monotone(A, along="arm", slack=10),
    claims.AllWithin(A, low=0), claims.Predicate("reads x", lambda view: (view.get(A.at(arm="x")).mean > 0, ""),
                                                 reads=(A,))])
def test_missing_or_nan_fails(check):
  missing = {} if isinstance(check, claims.TableCheck) else {"a/y": one(0.5)}   # a table check sees no rows
  assert not check.evaluate(missing).passed
  assert not check.evaluate({"a/x": one(math.nan), "a/y": one(0.5)}).passed


def test_claim_record_names_the_metrics_read():
  outcome = claims.Claim("c", "statement", claims.InInterval(SCALAR.at(what="v"), 0, 1)).evaluate({"scalar/v": one(0.5)})
  assert outcome == {"name": "c", "statement": "statement", "check": "scalar/v in [0, 1]", "passed": True,
                     "detail": "scalar/v = 0.5", "asserted": True, "metrics": ["scalar/v"]}


def test_claims_outside_their_tiers_are_reported_but_not_asserted():
  failing = claims.Claim("c", "statement", claims.InInterval(SCALAR.at(what="v"), 0, 1), tiers=("small", "paper"))
  metrics = {"scalar/v": one(2.0)}
  at_smoke, at_small = failing.evaluate(metrics, "smoke"), failing.evaluate(metrics, "small")
  assert not at_smoke["passed"] and not at_smoke["asserted"]
  assert not at_small["passed"] and at_small["asserted"]
  assert claims.all_passed([at_smoke])
  assert not claims.all_passed([at_smoke, at_small])
  assert claims.verdict(at_smoke) == "not asserted (fails)" and claims.verdict(at_small) == "FAIL"
  assert claims.count([at_smoke, at_small]) == "0/1 (+1 not asserted)"
  assert claims.Claim("d", "s", claims.InInterval(SCALAR.at(what="v"), 0, 1)).evaluate(metrics)["asserted"]


def test_a_predicate_reading_a_missing_metric_fails_cleanly():
  check = claims.Predicate("reads b", lambda view: (view.get(A.at(arm="y")).mean > 0, "b positive"), reads=(A,))
  outcome = check.evaluate({"a/x": one(1.0)})
  assert not outcome.passed and "'a/y' missing" in outcome.detail


def test_a_check_that_raises_is_an_error_naming_the_claim():
  def buggy(view):
    return {}["no such key"], ""   # a bug: a KeyError that is not a missing metric
  claim = claims.Claim("buggy_claim", "s", claims.Predicate("buggy", buggy, reads=(A,)))
  outcome = claim.evaluate({"a/x": one(1.0)})
  assert not outcome["passed"] and "buggy_claim" in outcome["error"] and "KeyError" in outcome["error"]
  assert claims.verdict(outcome) == "ERROR" and claims.failures([outcome]) == ["buggy_claim"]


def test_a_predicate_must_declare_and_may_only_read_its_families():
  with pytest.raises(TypeError, match="declare"):
    claims.Predicate("reads", lambda view: (True, ""), reads=())
  sneaky = claims.Claim("sneaky", "s", claims.Predicate("reads B", lambda view: (len(view.of(SCALAR)) > 0, ""),
                                                        reads=(A,)))
  assert sneaky.evaluate({"scalar/v": one(1.0)})["error"]


def test_renaming_a_template_label_breaks_its_claim_at_load_time():
  """A claim names labels of its family; after a rename of the template the claim fails when it is built."""
  claims.PowerLawSlope(GRID, x="n", interval=(-1, 0), where={"L": LARGEST})
  renamed = Family("err/{act}/width={width:d}/L={L:d}")
  with pytest.raises(LabelError, match="no label"):
    claims.PowerLawSlope(renamed, x="n", interval=(-1, 0), where={"L": LARGEST})
  with pytest.raises(LabelError, match="no label"):
    renamed.at(act="relu", n=4, L=4)
  with pytest.raises(LabelError):
    claims.StepwiseDecrease(Family("err/{act}/n={n:d}/depth={depth:d}"), along="n", where={"L": LARGEST})


def test_an_experiment_refuses_claims_over_undeclared_families():
  claim = claims.Claim("c", "s", claims.AllWithin(GRID, low=0))
  with pytest.raises(ValueError, match="undeclared"):
    registry.Experiment(name="x", description="", papers=(), families=(A,), claims=(claim,), tiers=(),
                        run=lambda config, ctx: None, needs=lambda config, seeds: None)
  registry.Experiment(name="x", description="", papers=(), families=(GRID,), claims=(claim,), tiers=(),
                      run=lambda config, ctx: None, needs=lambda config, seeds: None)


def test_describe_says_what_is_tested():
  text = claims.StepwiseDecrease(GRID, along="n", where={"L": LARGEST}, per=("act",)).describe()
  assert "n" in text and "LARGEST" in text and "per act" in text and GRID.template in text
  assert np.isfinite(claims.power_law_slope([(1, one(1.0)), (2, one(0.5)), (4, one(0.25))])[0])


def test_power_law_slope_bootstrap_over_seeds():
  """Seed means ~ n^-2 while single seeds scatter around zero: the bootstrap slope of the means finds -2, a wrong
  theory interval fails, and per-seed fits (logs of negative values) cannot be made."""
  rng = np.random.default_rng(0)
  seeds = list(range(12))
  metrics = {GRID.name(act="relu", n=n, L=4): Metric(list(n ** -2.0 * (1 + rng.normal(0, 1.0, 12))), seeds)
             for n in (16, 32, 64, 128, 256)}
  right = claims.PowerLawSlope(GRID, x="n", interval=(-2.5, -1.5), method="bootstrap")
  outcome = right.evaluate(metrics)
  assert outcome.passed and "CI" in outcome.detail and "bootstrap" in right.describe()
  assert not claims.PowerLawSlope(GRID, x="n", interval=(-1.25, -0.75), method="bootstrap").evaluate(metrics).passed
  below_zero = claims.PowerLawSlope(GRID, x="n", interval=(-math.inf, 0.0), method="bootstrap", ci_inside=True)
  assert below_zero.evaluate(metrics).passed
  with pytest.raises(ValueError):
    claims.PowerLawSlope(GRID, x="n", method="jackknife")
  metrics[GRID.name(act="relu", n=256, L=4)] = Metric([1e-5, 2e-5], [0, 1])   # other seeds at one width
  assert not right.evaluate(metrics).passed


def test_power_law_slope_over_the_largest_x_only():
  """`last`: the fit over the largest x values (an asymptotic window) ignores a bend at small x."""
  seeds = [0, 1, 2, 3]
  value = lambda n: (0.9 if n < 64 else 100.0 / n)
  metrics = {GRID.name(act="relu", n=n, L=4): Metric([value(n) * e for e in (0.98, 1.0, 1.01, 1.02)], seeds)
             for n in (16, 32, 64, 128, 256)}
  assert claims.PowerLawSlope(GRID, x="n", interval=(-1.05, -0.95), last=3).evaluate(metrics).passed
  assert not claims.PowerLawSlope(GRID, x="n", interval=(-1.05, -0.95)).evaluate(metrics).passed
  with pytest.raises(ValueError):
    claims.PowerLawSlope(GRID, x="n", last=2)


def test_rounding_bounds_are_taken_at_the_runs_precision():
  from harness.precision import Rounding, unit_roundoff
  check = claims.AllWithin(SCALAR, high=Rounding(1000, relative=False))
  float32_error = {"scalar/x": m(500 * unit_roundoff("float32"))}
  assert check.evaluate(float32_error, "float32").passed
  assert not check.evaluate(float32_error, "float64").passed and not check.evaluate(float32_error).passed
  assert not check.evaluate({"scalar/x": m(2000 * unit_roundoff("float32"))}, "float32").passed
  theory = claims.AgreesWithTheory(SCALAR, theory=lambda **_: 3.0, formula="3", rounding=Rounding(100))
  near = {"scalar/x": m(3.0 * (1 + 50 * unit_roundoff("float32")))}
  assert theory.evaluate(near, "float32").passed and not theory.evaluate(near, "float64").passed
