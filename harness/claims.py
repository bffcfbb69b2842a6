"""Checks of a paper's claims over the metrics of one run, read through declared metric families.

A claim is stated once in an experiment (`Claim(name, statement, check)`) and evaluated on every run; its
outcome is reported apart from the numeric regression against blessed references. A check names the families
(and labels) it reads, so a claim whose family or labels do not exist fails when the experiment is loaded, and
every outcome lists the metrics it read. Inside a check, a metric that is absent or not finite fails the claim
("missing"); any other exception is an error of the check, reported with the claim's name (verdict ERROR).

Checks over a family's table take `where` (a selection, harness.families.Table.select) and `per` (labels
whose every combination is checked on its own, e.g. per=("act", "inputs")).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness import stats
from harness.families import (Family, LabelError, MetricRef, MetricView, MissingMetric, Table, check_selection)
from harness.metrics import Metric, format_value
from harness.precision import Rounding, rounding_bound

REFERENCE_DTYPE = "float64"   # the precision of theory values and of float64 routes; a run of unknown precision


@dataclasses.dataclass(frozen=True)
class Outcome:
  passed: bool
  detail: str
  metrics: tuple[str, ...] = ()


class Check:
  """Base class: `_evaluate(view)` returns (passed, detail); `families()` lists every family it reads."""

  def describe(self) -> str:
    raise NotImplementedError

  def families(self) -> tuple[Family, ...]:
    raise NotImplementedError

  def _evaluate(self, view: MetricView) -> tuple[bool, str]:
    raise NotImplementedError

  def evaluate(self, metrics: Mapping[str, Metric], dtype: str | None = None) -> Outcome:
    """Missing or non-finite metrics fail the check; other exceptions propagate (Claim reports them).
    `dtype`: the run's precision, for bounds stated as a `precision.Rounding` (None: float64)."""
    view = MetricView(metrics, self.families(), dtype=dtype)
    try:
      passed, detail = self._evaluate(view)
    except MissingMetric as e:
      return Outcome(False, str(e), tuple(view.read))
    return Outcome(bool(passed), detail, tuple(view.read))


def _distinct(families) -> tuple[Family, ...]:
  """The families in order, each once (families compare by identity)."""
  out = []
  for family in families:
    if not any(family is f for f in out):
      out.append(family)
  return tuple(out)


def _refs_families(*refs) -> tuple[Family, ...]:
  return _distinct(ref.family for ref in refs if isinstance(ref, MetricRef))


def _require_ref(value, what: str) -> None:
  if not isinstance(value, MetricRef):
    raise TypeError(f"{what} must be a MetricRef (Family.at(...)), got {value!r}")


# -- checks of single metrics --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Greater(Check):
  """mean(a) > mean(b) + margin; with several seeds on both sides, significant at `alpha`.

  test: "paired" (same seeds on both sides, paired t-test), "welch" (Welch's t-test), or "none"
  (plain comparison of means, for deterministic metrics).
  """
  a: MetricRef
  b: MetricRef
  margin: float = 0.0
  test: str = "welch"
  alpha: float = 0.05

  def __post_init__(self):
    _require_ref(self.a, "a")
    _require_ref(self.b, "b")
    if self.test not in ("paired", "welch", "none"):
      raise ValueError(f"unknown test {self.test!r}")

  def describe(self) -> str:
    margin = f" + {self.margin:g}" if self.margin else ""
    how = "" if self.test == "none" else f" ({self.test} t-test, one-sided alpha={self.alpha:g})"
    return f"{self.a.name} > {self.b.name}{margin}{how}"

  def families(self):
    return _refs_families(self.a, self.b)

  def _evaluate(self, view):
    a, b = view.get(self.a), view.get(self.b)
    diff = a.mean - b.mean
    text = f"{format_value(a.mean)} vs {format_value(b.mean)} (diff {diff:+.4g})"
    if self.test == "none" or (a.n < 2 and b.n < 2):
      return diff > self.margin, text
    shifted = [v - self.margin for v in a.values]
    if self.test == "paired":
      if a.seeds != b.seeds:
        return False, text + "; paired test needs the same seeds on both sides"
      result = stats.paired_t_test(shifted, b.values, alternative="greater")
    else:
      result = stats.welch_t_test(shifted, b.values, alternative="greater")
    return diff > self.margin and result.p_value < self.alpha, f"{text}; {result.description} p={result.p_value:.3g}"


@dataclasses.dataclass(frozen=True)
class InInterval(Check):
  """low <= mean(metric) <= high (None leaves a side open)."""
  metric: MetricRef
  low: float | None = None
  high: float | None = None

  def __post_init__(self):
    _require_ref(self.metric, "metric")

  def describe(self) -> str:
    return f"{self.metric.name} in [{_bound(self.low, '-inf')}, {_bound(self.high, 'inf')}]"

  def families(self):
    return _refs_families(self.metric)

  def _evaluate(self, view):
    value = view.get(self.metric).mean
    return _inside(value, self.low, self.high), f"{self.metric.name} = {format_value(value)}"


@dataclasses.dataclass(frozen=True)
class Close(Check):
  """|mean(metric) - target| <= atol + rtol * |target|; target is a number (a theory value) or another metric."""
  metric: MetricRef
  target: float | MetricRef
  atol: float = 0.0
  rtol: float = 0.0

  def __post_init__(self):
    _require_ref(self.metric, "metric")

  def describe(self) -> str:
    target = self.target.name if isinstance(self.target, MetricRef) else f"{self.target:.6g}"
    return f"|{self.metric.name} - {target}| <= {self.atol:g} + {self.rtol:g}*|target|"

  def families(self):
    return _refs_families(self.metric, self.target)

  def _evaluate(self, view):
    value = view.get(self.metric).mean
    target = view.get(self.target).mean if isinstance(self.target, MetricRef) else float(self.target)
    error = abs(value - target)
    bound = self.atol + self.rtol * abs(target)
    return error <= bound, (f"{format_value(value)} vs {format_value(target)}: |diff| {error:.3g} "
                            f"{'<=' if error <= bound else '>'} {bound:.3g}")


# -- checks over a family's table ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TableCheck(Check):
  """A check of one family's metrics, selected by `where`, in every combination of the `per` labels."""
  family: Family
  where: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  per: tuple[str, ...] = ()

  def __post_init__(self):
    if not isinstance(self.family, Family):
      raise TypeError(f"family must be a Family, got {self.family!r}")
    check_selection(self.family, self.where, type(self).__name__)
    self.family.check_label_names(self.per, type(self).__name__)
    self.family.check_label_names(self._labels_used(), type(self).__name__)

  def _labels_used(self) -> tuple[str, ...]:
    return ()

  def families(self):
    return (self.family,)

  def _scope(self) -> str:
    parts = [f"{k}={_show(v)}" for k, v in self.where.items()]
    if self.per:
      parts.append("per " + ", ".join(self.per))
    return self.family.template + (f" [{'; '.join(parts)}]" if parts else "")

  def groups(self, view: MetricView) -> list[tuple[str, Table]]:
    table = view.of(self.family)
    groups = table.groups(*self.per) if self.per else {(): table}
    out = []
    for key, group in groups.items():
      selected = group.select(**self.where)
      if len(selected):
        out.append(("/".join(str(k) for k in key), selected))
    if not out:
      raise MissingMetric(f"no {self.family.template} metrics" + (f" with {_show_where(self.where)}" if self.where else ""))
    return out

  def _evaluate(self, view):
    return _all([self.check_group(label, table) for label, table in self.groups(view)])

  def check_group(self, label: str, table: Table) -> tuple[bool, str]:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Monotone(TableCheck):
  """The means along label `along` move in `direction`; each step may go against it by at most `slack`."""
  along: str = ""
  direction: str = "decreasing"
  slack: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    if self.direction not in ("decreasing", "increasing"):
      raise ValueError(f"direction must be decreasing or increasing, got {self.direction!r}")

  def _labels_used(self):
    return (self.along,)

  def describe(self) -> str:
    return f"{self.direction} in {self.along}: {self._scope()}" + (f" (slack {self.slack:g})" if self.slack else "")

  def check_group(self, label, table):
    series = _finite_series(table, self.along)
    if len(series) < 2:
      return False, f"{_prefix(label)}fewer than 2 points along {self.along}"
    means = [m.mean for _, m in series]
    sign = -1.0 if self.direction == "decreasing" else 1.0
    bad = [series[i + 1][0] for i in range(len(means) - 1) if sign * (means[i + 1] - means[i]) < -self.slack]
    text = " -> ".join(f"{m:.4g}" for m in means)
    return not bad, _prefix(label) + text + (f"; against the direction at {self.along}={bad}" if bad else "")


@dataclasses.dataclass(frozen=True)
class StepwiseDecrease(TableCheck):
  """Each consecutive step along `along` is a decrease: significant by a one-sided Welch t-test at `alpha`
  (per-seed metrics, test="welch"), or strict (test="none", deterministic metrics)."""
  along: str = ""
  alpha: float = 0.01
  test: str = "welch"

  def __post_init__(self):
    super().__post_init__()
    if self.test not in ("welch", "none"):
      raise ValueError(f"test must be welch or none, got {self.test!r}")

  def _labels_used(self):
    return (self.along,)

  def describe(self) -> str:
    how = f"one-sided Welch, alpha {self.alpha:g}" if self.test == "welch" else "strictly"
    return f"decreasing at each step in {self.along} ({how}): {self._scope()}"

  def check_group(self, label, table):
    series = _finite_series(table, self.along)
    if len(series) < 2:
      return False, f"{_prefix(label)}fewer than 2 points along {self.along}"
    steps = []
    for (x_a, a), (x_b, b) in zip(series, series[1:]):
      if self.test == "none":
        steps.append((b.mean < a.mean, f"{x_a}->{x_b}: {a.mean:.4g}->{b.mean:.4g}"))
      else:
        result = stats.welch_t_test(a.values, b.values, alternative="greater")
        steps.append((result.p_value < self.alpha, f"{x_a}->{x_b}: {a.mean:.4g}->{b.mean:.4g} p={result.p_value:.2g}"))
    failed = [t for ok, t in steps if not ok]
    return not failed, _prefix(label) + ("; ".join(failed) if failed else ", ".join(t for _, t in steps))


@dataclasses.dataclass(frozen=True)
class PowerLawSlope(TableCheck):
  """The log-log slope of the metric against label `x` lies in `interval`.

  Per-seed metrics: the slope is fitted per seed and averaged, with a Student-t interval over seeds;
  deterministic metrics: one least-squares fit of the values, with the fit's t interval
  (harness.stats.fit_power_law). With `method="bootstrap"` (per-seed metrics with the same seeds at every x):
  the slope of the seed means with a percentile bootstrap interval over seeds (harness.stats.
  bootstrap_power_law), for quantities whose seed MEAN is the power law (an unbiased squared-bias estimate).
  The estimate decides; with `ci_inside`, the whole confidence interval must lie in `interval` (e.g. interval
  (-inf, 0): a slope significantly below 0).
  """
  x: str = ""
  interval: tuple[float, float] = (-math.inf, math.inf)
  confidence: float = 0.95
  ci_inside: bool = False
  method: str = "per_seed"  # or "bootstrap"
  last: int = 0             # fit only the `last` largest x values (an asymptotic window); 0: all

  def __post_init__(self):
    super().__post_init__()
    if self.method not in ("per_seed", "bootstrap"):
      raise ValueError(f"method must be per_seed or bootstrap, got {self.method!r}")
    if self.last < 0 or 0 < self.last < 3:
      raise ValueError(f"last must be 0 (all) or >= 3 (a slope needs three points), got {self.last}")

  def _labels_used(self):
    return (self.x,)

  def describe(self) -> str:
    what = f"its {self.confidence:.0%} confidence interval" if self.ci_inside else "power-law slope"
    what += " of the seed means (bootstrap over seeds)" if self.method == "bootstrap" else ""
    what += f" over the {self.last} largest {self.x}" if self.last else ""
    return f"{what} vs {self.x} in [{self.interval[0]:g}, {self.interval[1]:g}]: {self._scope()}"

  def check_group(self, label, table):
    series = _finite_series(table, self.x)
    if self.last:
      series = series[-self.last:]
    if len(series) < 3:
      return False, f"{_prefix(label)}fewer than 3 points for a slope"
    if self.method == "bootstrap":
      try:
        estimate, ci = bootstrap_power_law_slope(series, self.confidence)
      except ValueError as e:   # seed means not all positive: no power law to fit
        return False, f"{_prefix(label)}no slope: {e}"
    else:
      estimate, ci = power_law_slope(series, self.confidence)
    inside = lambda v: self.interval[0] <= v <= self.interval[1]
    ok = inside(ci[0]) and inside(ci[1]) if self.ci_inside else inside(estimate)
    return ok, f"{_prefix(label)}slope {estimate:.3f} ({self.confidence:.0%} CI {ci[0]:.3f}..{ci[1]:.3f})"


def bootstrap_power_law_slope(series: Sequence[tuple[float, Metric]],
                              confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
  """(slope of the seed means, bootstrap interval over seeds) of a [(x, metric)] series (stats.bootstrap_power_law)."""
  seeds = [s for s in series[0][1].seeds if s is not None]
  if len(seeds) < 2:
    raise MissingMetric("a bootstrap slope needs per-seed metrics with at least two seeds")
  rows = []
  for _, metric in series:
    if sorted(metric.seeds) != sorted(seeds):
      raise MissingMetric(f"a bootstrap slope needs the same seeds at every x: {metric.seeds} vs {seeds}")
    rows.append([metric.values[metric.seeds.index(seed)] for seed in seeds])
  fit = stats.bootstrap_power_law([float(x) for x, _ in series], np.array(rows).T, confidence)
  return fit.slope, fit.slope_ci


def power_law_slope(series: Sequence[tuple[float, Metric]], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
  """(slope, confidence interval) of a [(x, metric)] series; per-seed fits when the metrics carry seeds."""
  x = np.array([float(v) for v, _ in series])
  seeds = [s for s in series[0][1].seeds if s is not None]
  if not seeds:
    fit = stats.fit_power_law(x, [m.mean for _, m in series], confidence)
    return fit.slope, fit.slope_ci
  slopes = []
  for seed in seeds:
    values = [m.values[m.seeds.index(seed)] for _, m in series if seed in m.seeds]
    if len(values) != len(series):
      raise MissingMetric(f"seed {seed} lacks a value at some {series}")
    slopes.append(stats.fit_power_law(x, values).slope)
  mean = float(np.mean(slopes))
  if len(slopes) < 2:
    return mean, (mean, mean)
  from scipy import stats as scipy_stats  # pylint: disable=import-outside-toplevel
  half = float(scipy_stats.t.ppf(0.5 + confidence / 2, len(slopes) - 1) * np.std(slopes, ddof=1) / math.sqrt(len(slopes)))
  return mean, (mean - half, mean + half)


@dataclasses.dataclass(frozen=True)
class NotSignificantlyAbove(TableCheck):
  """At the largest value of `along`, the metric is not significantly above `factor` x its value at the
  smallest (one-sided Welch at `alpha`): growth along `along` is bounded."""
  along: str = ""
  factor: float = 1.0
  alpha: float = 0.01

  def _labels_used(self):
    return (self.along,)

  def describe(self) -> str:
    return (f"at the largest {self.along} not above {self.factor:g} x the smallest {self.along} (one-sided Welch, "
            f"alpha {self.alpha:g}): {self._scope()}")

  def check_group(self, label, table):
    series = _finite_series(table, self.along)
    (x_lo, low), (x_hi, high) = series[0], series[-1]
    result = stats.welch_t_test(high.values, [self.factor * v for v in low.values], alternative="greater")
    ratio = high.mean / low.mean
    text = f"{_prefix(label)}{low.mean:.4g} at {self.along}={x_lo} -> {high.mean:.4g} at {x_hi} (ratio {ratio:.3f}"
    return result.p_value >= self.alpha, text + f", p={result.p_value:.2g})"


@dataclasses.dataclass(frozen=True)
class AllWithin(TableCheck):
  """Every selected metric's mean lies in [low, high] (None leaves a side open). A bound given as a
  `precision.Rounding` (a metric that is itself a rounding error, e.g. the largest relative difference of two
  routes to the same number) is its value at the run's precision plus float64 (the other route's)."""
  low: float | Rounding | None = None
  high: float | Rounding | None = None

  def describe(self) -> str:
    return f"every metric in [{_bound(self.low, '-inf')}, {_bound(self.high, 'inf')}]: {self._scope()}"

  def _evaluate(self, view):
    low, high = (_at_precision(b, view.dtype) for b in (self.low, self.high))
    text = "".join(f" (bound {b:.3g} at {view.dtype or REFERENCE_DTYPE})" for b, given in ((low, self.low), (high, self.high))
                   if isinstance(given, Rounding))
    passed, detail = _all([self._check(label, table, low, high) for label, table in self.groups(view)])
    return passed, detail + text

  def _check(self, label, table, low, high):
    results = [(_inside(r.metric.mean, low, high), f"{_row_label(table, r)}{r.metric.mean:.4g}") for r in table]
    return _all(results, prefix=_prefix(label))


@dataclasses.dataclass(frozen=True)
class PValuesAbove(TableCheck):
  """Every selected p-value exceeds family_alpha / (number of tests) (Bonferroni): a run in which every null
  hypothesis holds fails with probability at most family_alpha."""
  family_alpha: float = 0.01

  def describe(self) -> str:
    return f"every p-value > {self.family_alpha:g} / (number of tests) (Bonferroni): {self._scope()}"

  def _evaluate(self, view):
    rows = [r for _, table in self.groups(view) for r in table]
    threshold = self.family_alpha / len(rows)
    low = [r for r in rows if not r.metric.mean > threshold]
    smallest = min(rows, key=lambda r: r.metric.mean)
    text = f"{len(rows)} tests, threshold {threshold:.3g}; smallest p {smallest.metric.mean:.3g} ({smallest.name})"
    return not low, text + "".join(f"; {r.name}: p={r.metric.mean:.3g}" for r in low)


@dataclasses.dataclass(frozen=True)
class AgreesWithTheory(TableCheck):
  """Every selected metric is within atol + rtol |theory| of `theory(**labels)`, a closed form stated
  with the claim (`formula` says which, for the report)."""
  theory: Callable[..., float] | None = None
  formula: str = ""
  rtol: float = 0.0
  atol: float = 0.0
  rounding: Rounding | None = None   # the metric's rounding bound, at the run's precision (theory: float64)

  def __post_init__(self):
    super().__post_init__()
    if self.theory is None or not self.formula:
      raise ValueError("AgreesWithTheory needs a theory function and its formula")

  def describe(self) -> str:
    extra = " + its rounding at the run's precision" if self.rounding is not None else ""
    return f"= {self.formula} within {self.atol:g} + {self.rtol:g}*|theory|{extra}: {self._scope()}"

  def _evaluate(self, view):
    return _all([self._check(label, table, view.dtype or REFERENCE_DTYPE) for label, table in self.groups(view)])

  def _check(self, label, table, dtype):
    worst, worst_row = 0.0, None
    failed = []
    for r in table:
      target = float(self.theory(**r.labels))
      error = abs(r.metric.mean - target)
      rounding = 0.0 if self.rounding is None else rounding_bound(self.rounding.rule(r.labels), target, dtype,
                                                                  REFERENCE_DTYPE)
      if error > self.atol + self.rtol * abs(target) + rounding:
        failed.append(f"{r.name}: {r.metric.mean:.10g} vs {target:.10g}")
      rel = error / abs(target) if target else error
      if rel >= worst:
        worst, worst_row = rel, r
    text = f"{_prefix(label)}{len(table)} metrics, worst relative difference {worst:.2g} ({worst_row.name})"
    return not failed, text + "".join(f"; {t}" for t in failed)


@dataclasses.dataclass(frozen=True)
class Matches(Check):
  """Each metric of family `a` within atol + rtol |b| of the metric of family `b` with the same labels
  (e.g. a measured coefficient against its theory value computed in the same run)."""
  a: Family
  b: Family
  rtol: float = 0.0
  atol: float = 0.0

  def __post_init__(self):
    if set(self.a.label_names) != set(self.b.label_names):
      raise LabelError(f"Matches: {self.a.template!r} and {self.b.template!r} have different labels")

  def describe(self) -> str:
    return f"{self.a.template} within {self.atol:g} + {self.rtol:g}*|b| of {self.b.template} (same labels)"

  def families(self):
    return (self.a, self.b)

  def _evaluate(self, view):
    a = view.of(self.a)
    if not len(a):
      raise MissingMetric(f"no {self.a.template} metrics")
    results = []
    for row in a:
      other = view.get(self.b.at(**row.labels))
      error = abs(row.metric.mean - other.mean)
      label = "/".join(str(v) for v in row.labels.values())
      results.append((error <= self.atol + self.rtol * abs(other.mean),
                      f"{label}: {row.metric.mean:.4g} vs {other.mean:.4g}"))
    return _all(results)


@dataclasses.dataclass(frozen=True)
class RoutesAgree(Check):
  """Two computations of the same quantities agree: in each family, every metric whose label `label` is `a`
  within `rtol` (relative) of its twin with `b` (e.g. method=closed_form vs method=quadrature)."""
  of: tuple[Family, ...]
  label: str
  a: str
  b: str
  rtol: float

  def __post_init__(self):
    for family in self.of:
      family.check_label_names([self.label], "RoutesAgree")

  def describe(self) -> str:
    return (f"every {self.label}={self.a} within {self.rtol:g} rel. of its {self.label}={self.b} twin: "
            + ", ".join(f.template for f in self.of))

  def families(self):
    return tuple(self.of)

  def _evaluate(self, view):
    errors = {}
    for family in self.of:
      for row in view.of(family).select(**{self.label: self.a}):
        twin = view.get(family.at(**dict(row.labels, **{self.label: self.b})))
        if not row.metric.finite:
          raise MissingMetric(f"metric {row.name!r} is not finite")
        errors[row.name] = abs(row.metric.mean - twin.mean) / abs(row.metric.mean)
    if not errors:
      raise MissingMetric(f"no {self.label}={self.a} metrics")
    worst = max(errors, key=errors.get)
    return errors[worst] <= self.rtol, f"{len(errors)} pairs; worst relative difference {errors[worst]:.2e} ({worst})"


@dataclasses.dataclass(frozen=True)
class AllOf(Check):
  """Every one of `checks` passes."""
  checks: tuple[Check, ...]

  def describe(self) -> str:
    return "; and ".join(c.describe() for c in self.checks)

  def families(self):
    return _distinct(f for check in self.checks for f in check.families())

  def _evaluate(self, view):
    results = [check._evaluate(view) for check in self.checks]  # pylint: disable=protected-access
    passed = all(ok for ok, _ in results)
    return passed, " | ".join(text for _, text in results)


@dataclasses.dataclass(frozen=True)
class Predicate(Check):
  """Anything else: `fn(view) -> (passed, detail)`, where `view.of(FAMILY)` gives a family's Table and
  `view.get(FAMILY.at(...))` one metric; `reads` must name every family `fn` reads (others raise)."""
  description: str
  fn: Callable[[MetricView], tuple[bool, str]]
  reads: tuple[Family, ...]

  def __post_init__(self):
    if not self.reads or not all(isinstance(f, Family) for f in self.reads):
      raise TypeError(f"Predicate {self.description!r} must declare the families it reads")

  def describe(self) -> str:
    return self.description

  def families(self):
    return tuple(self.reads)

  def _evaluate(self, view):
    passed, detail = self.fn(view)
    return bool(passed), detail


# -- claims ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Claim:
  """A claim of a paper, e.g. "CNN-GAP kernels beat CNN-Flatten (1912.13053 Fig. 1)", and its check.

  `tiers`: the tiers sized to resolve the claim (None: every tier). At other tiers (a smoke tier too small
  for a significance test, say) the claim is still evaluated and reported, marked not asserted, and its
  outcome does not decide the run; the smoke tier's numbers are then guarded by its blessed references.
  """
  name: str
  statement: str
  check: Check
  tiers: tuple[str, ...] | None = None

  def __post_init__(self):
    if not isinstance(self.check, Check):
      raise TypeError(f"claim {self.name}: check must be a Check, got {self.check!r}")

  def families(self) -> tuple[Family, ...]:
    return self.check.families()

  def asserted_at(self, tier: str | None) -> bool:
    return self.tiers is None or tier is None or tier in self.tiers

  def evaluate(self, metrics: Mapping[str, Metric], tier: str | None = None, dtype: str | None = None) -> dict:
    """The outcome record; an exception inside the check (a bug, not a missing metric) is an error naming
    the claim: passed False, `error` set, verdict ERROR. `dtype`: the run's precision (Rounding bounds)."""
    error = None
    try:
      outcome = self.check.evaluate(metrics, dtype)
    except Exception as e:  # pylint: disable=broad-except
      error = f"claim {self.name}: check raised {type(e).__name__}: {e}"
      outcome = Outcome(False, error)
    result = {"name": self.name, "statement": self.statement, "check": self.check.describe(),
              "passed": outcome.passed, "detail": outcome.detail, "asserted": self.asserted_at(tier),
              "metrics": list(outcome.metrics)}
    if error is not None:
      result["error"] = error
    return result


def _at_precision(bound, dtype: str | None):
  """A bound as a number: a Rounding evaluated at the run's precision plus float64's (the other route)."""
  if isinstance(bound, Rounding):
    return rounding_bound(bound.rule(), 1.0, dtype or REFERENCE_DTYPE, REFERENCE_DTYPE)
  return bound


def _bound(value, default: str) -> str:
  if isinstance(value, Rounding):
    return f"{value.ulps_at():.3g}u (u of the run's precision + float64's)"
  return default if value is None else f"{value:.6g}"


def _inside(value: float, low: float | None, high: float | None) -> bool:
  return (low is None or value >= low) and (high is None or value <= high)


def _show(value: Any) -> str:
  if isinstance(value, (tuple, list)):
    return "{" + ", ".join(str(v) for v in value) + "}"
  if callable(value) and not isinstance(value, type):
    return getattr(value, "__name__", repr(value))
  return repr(value) if not isinstance(value, str) else value


def _show_where(where: Mapping[str, Any]) -> str:
  return ", ".join(f"{k}={_show(v)}" for k, v in where.items())


def _prefix(label: str) -> str:
  return f"{label}: " if label else ""


def _row_label(table: Table, row) -> str:
  varying = [n for n in table.family.label_names if len(table.values(n)) > 1]
  return "".join(f"{n}={row.labels[n]} " for n in varying)


def _finite_series(table: Table, label: str) -> list[tuple[Any, Metric]]:
  series = table.series(label)
  for x, metric in series:
    if not metric.finite:
      raise MissingMetric(f"{table.family.template} at {label}={x} is not finite: {metric.values}")
  return series


def _all(results: list[tuple[bool, str]], prefix: str = "") -> tuple[bool, str]:
  """Every result passed; the detail lists the failures, or the first few results."""
  if not results:
    raise MissingMetric("no metrics to check")
  failed = [text for ok, text in results if not ok]
  if failed:
    return False, prefix + "; ".join(failed)
  return True, prefix + "; ".join(text for _, text in results[:4]) + (
      f" (+{len(results) - 4} more)" if len(results) > 4 else "")


def evaluate_all(claims: Sequence[Claim], metrics: Mapping[str, Metric], tier: str | None = None,
                 dtype: str | None = None) -> list[dict]:
  return [claim.evaluate(metrics, tier, dtype) for claim in claims]


def _asserted(outcome: Mapping) -> bool:
  """Whether the outcome decides its run (outcomes without the key, from older records, do)."""
  return outcome.get("asserted", True)


def verdict(outcome: Mapping) -> str:
  """'ok', 'FAIL', 'ERROR' (the check raised), or for a claim not asserted at the run's tier
  'not asserted (ok)' / 'not asserted (fails)'."""
  if outcome.get("error"):
    return "ERROR" if _asserted(outcome) else "not asserted (ERROR)"
  if not _asserted(outcome):
    return "not asserted (" + ("ok" if outcome["passed"] else "fails") + ")"
  return "ok" if outcome["passed"] else "FAIL"


def count(outcomes: Sequence[Mapping]) -> str:
  """'passed/asserted' over the asserted claims, e.g. '7/8' (plus '+2 not asserted')."""
  asserted = [o for o in outcomes if _asserted(o)]
  extra = len(outcomes) - len(asserted)
  return f"{sum(o['passed'] for o in asserted)}/{len(asserted)}" + (f" (+{extra} not asserted)" if extra else "")


def failures(outcomes: Sequence[Mapping]) -> list[str]:
  """Names of the asserted claims that failed (or errored)."""
  return [o["name"] for o in outcomes if _asserted(o) and not o["passed"]]


def all_passed(outcomes: Sequence[Mapping]) -> bool:
  """Every asserted claim passed."""
  return not failures(outcomes)


__all__ = ["Claim", "Check", "TableCheck", "Greater", "InInterval", "Close", "Monotone", "StepwiseDecrease",
           "PowerLawSlope", "NotSignificantlyAbove", "AllWithin", "PValuesAbove", "AgreesWithTheory", "Matches",
           "RoutesAgree", "AllOf", "Predicate", "Outcome", "MissingMetric", "power_law_slope", "evaluate_all",
           "all_passed", "failures", "verdict", "count"]
