"""Checks of a paper's claims over the metrics of one run.

A claim is stated once in an experiment (`Claim(name, statement, check)`) and evaluated on every run;
its outcome is reported apart from the numeric regression against blessed references. Checks are
declarative so they print what they test.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

from harness import stats
from harness.metrics import Metric, format_value


@dataclasses.dataclass(frozen=True)
class Outcome:
  passed: bool
  detail: str


class MissingMetric(Exception):
  pass


def _get(metrics: Mapping[str, Metric], name: str) -> Metric:
  metric = metrics.get(name)
  if metric is None:
    raise MissingMetric(f"metric {name!r} missing")
  if not metric.finite:
    raise MissingMetric(f"metric {name!r} is not finite: {metric.values}")
  return metric


class Check:
  """Base class: `evaluate` turns missing or non-finite metrics into a failed outcome."""

  def describe(self) -> str:
    raise NotImplementedError

  def _evaluate(self, metrics: Mapping[str, Metric]) -> Outcome:
    raise NotImplementedError

  def metric_names(self) -> tuple[str, ...]:
    return ()

  def evaluate(self, metrics: Mapping[str, Metric]) -> Outcome:
    try:
      return self._evaluate(metrics)
    except MissingMetric as e:
      return Outcome(False, str(e))
    except KeyError as e:  # a Predicate's function looking up a metric the run did not record
      return Outcome(False, f"metric {e.args[0]!r} missing")


@dataclasses.dataclass(frozen=True)
class Greater(Check):
  """mean(a) > mean(b) + margin; with several seeds on both sides, significant at `alpha`.

  test: "paired" (same seeds on both sides, paired t-test), "welch" (Welch's t-test), or "none"
  (plain comparison of means, for deterministic metrics).
  """
  a: str
  b: str
  margin: float = 0.0
  test: str = "welch"
  alpha: float = 0.05

  def describe(self) -> str:
    margin = f" + {self.margin:g}" if self.margin else ""
    how = "" if self.test == "none" else f" ({self.test} t-test, one-sided alpha={self.alpha:g})"
    return f"{self.a} > {self.b}{margin}{how}"

  def metric_names(self):
    return (self.a, self.b)

  def _evaluate(self, metrics):
    a, b = _get(metrics, self.a), _get(metrics, self.b)
    diff = a.mean - b.mean
    text = f"{format_value(a.mean)} vs {format_value(b.mean)} (diff {diff:+.4g})"
    if self.test == "none" or (a.n < 2 and b.n < 2):
      return Outcome(diff > self.margin, text)
    shifted = [v - self.margin for v in a.values]
    if self.test == "paired":
      if a.seeds != b.seeds:
        return Outcome(False, text + "; paired test needs the same seeds on both sides")
      result = stats.paired_t_test(shifted, b.values, alternative="greater")
    elif self.test == "welch":
      result = stats.welch_t_test(shifted, b.values, alternative="greater")
    else:
      raise ValueError(f"unknown test {self.test!r}")
    return Outcome(diff > self.margin and result.p_value < self.alpha,
                   f"{text}; {result.description} p={result.p_value:.3g}")


@dataclasses.dataclass(frozen=True)
class InInterval(Check):
  """low <= mean(metric) <= high (None leaves a side open)."""
  metric: str
  low: float | None = None
  high: float | None = None

  def describe(self) -> str:
    return f"{self.metric} in [{_bound(self.low, '-inf')}, {_bound(self.high, 'inf')}]"

  def metric_names(self):
    return (self.metric,)

  def _evaluate(self, metrics):
    value = _get(metrics, self.metric).mean
    ok = (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
    return Outcome(ok, f"{self.metric} = {format_value(value)}")


@dataclasses.dataclass(frozen=True)
class Close(Check):
  """|mean(metric) - target| <= atol + rtol * |target|; target is a number or another metric's name."""
  metric: str
  target: float | str
  atol: float = 0.0
  rtol: float = 0.0

  def describe(self) -> str:
    target = self.target if isinstance(self.target, str) else f"{self.target:.6g}"
    return f"|{self.metric} - {target}| <= {self.atol:g} + {self.rtol:g}*|target|"

  def metric_names(self):
    return (self.metric,) + ((self.target,) if isinstance(self.target, str) else ())

  def _evaluate(self, metrics):
    value = _get(metrics, self.metric).mean
    target = _get(metrics, self.target).mean if isinstance(self.target, str) else float(self.target)
    error = abs(value - target)
    bound = self.atol + self.rtol * abs(target)
    return Outcome(error <= bound, f"{format_value(value)} vs {format_value(target)}: |diff| {error:.3g} "
                                   f"{'<=' if error <= bound else '>'} {bound:.3g}")


@dataclasses.dataclass(frozen=True)
class Monotone(Check):
  """The means of `metrics`, in the order given, move in `direction` ("decreasing" or "increasing").

  Each consecutive step may go against the direction by at most `slack` (absolute).
  """
  metrics: tuple[str, ...]
  direction: str = "decreasing"
  slack: float = 0.0

  def describe(self) -> str:
    return f"{self.direction}: " + " -> ".join(self.metrics) + (f" (slack {self.slack:g})" if self.slack else "")

  def metric_names(self):
    return tuple(self.metrics)

  def _evaluate(self, metrics):
    if self.direction not in ("decreasing", "increasing"):
      raise ValueError(f"direction must be decreasing or increasing, got {self.direction!r}")
    means = [_get(metrics, name).mean for name in self.metrics]
    sign = -1.0 if self.direction == "decreasing" else 1.0
    bad = [i for i in range(len(means) - 1) if sign * (means[i + 1] - means[i]) < -self.slack]
    text = " -> ".join(f"{m:.4g}" for m in means)
    return Outcome(not bad, text + (f"; against the direction at steps {bad}" if bad else ""))


@dataclasses.dataclass(frozen=True)
class Predicate(Check):
  """Anything else: `fn(metrics) -> (passed, detail)`; `description` says what it tests."""
  description: str
  fn: Callable[[Mapping[str, Metric]], tuple[bool, str]]
  names: tuple[str, ...] = ()

  def describe(self) -> str:
    return self.description

  def metric_names(self):
    return self.names

  def _evaluate(self, metrics):
    for name in self.names:
      _get(metrics, name)
    passed, detail = self.fn(metrics)
    return Outcome(bool(passed), detail)


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

  def asserted_at(self, tier: str | None) -> bool:
    return self.tiers is None or tier is None or tier in self.tiers

  def evaluate(self, metrics: Mapping[str, Metric], tier: str | None = None) -> dict:
    outcome = self.check.evaluate(metrics)
    return {"name": self.name, "statement": self.statement, "check": self.check.describe(),
            "passed": outcome.passed, "detail": outcome.detail, "asserted": self.asserted_at(tier)}


def _bound(value: float | None, default: str) -> str:
  return default if value is None else f"{value:.6g}"


def evaluate_all(claims: Sequence[Claim], metrics: Mapping[str, Metric], tier: str | None = None) -> list[dict]:
  return [claim.evaluate(metrics, tier) for claim in claims]


def _asserted(outcome: Mapping) -> bool:
  """Whether the outcome decides its run (outcomes without the key, from older records, do)."""
  return outcome.get("asserted", True)


def verdict(outcome: Mapping) -> str:
  """'ok', 'FAIL', or for a claim not asserted at the run's tier 'not asserted (ok)' / 'not asserted (fails)'."""
  if not _asserted(outcome):
    return "not asserted (" + ("ok" if outcome["passed"] else "fails") + ")"
  return "ok" if outcome["passed"] else "FAIL"


def count(outcomes: Sequence[Mapping]) -> str:
  """'passed/asserted' over the asserted claims, e.g. '7/8' (plus '+2 not asserted')."""
  asserted = [o for o in outcomes if _asserted(o)]
  extra = len(outcomes) - len(asserted)
  return f"{sum(o['passed'] for o in asserted)}/{len(asserted)}" + (f" (+{extra} not asserted)" if extra else "")


def failures(outcomes: Sequence[Mapping]) -> list[str]:
  """Names of the asserted claims that failed."""
  return [o["name"] for o in outcomes if _asserted(o) and not o["passed"]]


def all_passed(outcomes: Sequence[Mapping]) -> bool:
  """Every asserted claim passed."""
  return not failures(outcomes)


__all__ = ["Claim", "Check", "Greater", "InInterval", "Close", "Monotone", "Predicate", "Outcome",
           "evaluate_all", "all_passed", "failures", "verdict", "count"]
