"""Statistics used by tolerance rules, claims and fits.

Every test returns plain floats so results can be stored in JSON. Conventions follow scipy.stats:
`alternative` is the direction of departure that counts as evidence ("two-sided", "less": the first
sample is smaller, "greater": the first sample is larger).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import stats as sps

ALTERNATIVES = ("two-sided", "less", "greater")


@dataclasses.dataclass(frozen=True)
class TestResult:
  statistic: float
  p_value: float
  df: float
  description: str


def _as_array(values: Sequence[float]) -> np.ndarray:
  array = np.asarray(values, dtype=np.float64).reshape(-1)
  if array.size == 0:
    raise ValueError("empty sample")
  return array


def _check_alternative(alternative: str) -> None:
  if alternative not in ALTERNATIVES:
    raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")


def _p_from_t(t: float, df: float, alternative: str) -> float:
  if alternative == "two-sided":
    return float(2.0 * sps.t.sf(abs(t), df))
  if alternative == "less":
    return float(sps.t.cdf(t, df))
  return float(sps.t.sf(t, df))


def _degenerate(diff: float, alternative: str) -> float:
  """p-value when both samples have zero spread: the difference is exact."""
  if alternative == "two-sided":
    return 1.0 if diff == 0 else 0.0
  if alternative == "less":
    return 0.0 if diff < 0 else 1.0
  return 0.0 if diff > 0 else 1.0


def welch_t_test(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> TestResult:
  """Welch's unequal-variance t-test of mean(a) - mean(b) (Welch 1947).

  With a single value in `a` (one measured seed against a reference sample) it becomes the
  prediction-interval test t = (a - mean(b)) / (s_b sqrt(1 + 1/n_b)) with n_b - 1 degrees of freedom.
  """
  _check_alternative(alternative)
  a, b = _as_array(a), _as_array(b)
  diff = float(a.mean() - b.mean())
  if a.size == 1 and b.size == 1:
    raise ValueError("a t-test needs at least two values in one of the samples")
  if a.size == 1 or b.size == 1:
    sample = b if a.size == 1 else a
    scale = float(sample.std(ddof=1)) * math.sqrt(1.0 + 1.0 / sample.size)
    df = float(sample.size - 1)
    if scale == 0.0:
      return TestResult(math.copysign(math.inf, diff) if diff else 0.0, _degenerate(diff, alternative), df,
                        "prediction interval (zero spread)")
    t = diff / scale
    return TestResult(t, _p_from_t(t, df, alternative), df, "prediction-interval t")
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  se2 = va + vb
  if se2 == 0.0:
    return TestResult(math.copysign(math.inf, diff) if diff else 0.0, _degenerate(diff, alternative),
                      float(a.size + b.size - 2), "Welch t (zero spread)")
  t = diff / math.sqrt(se2)
  df = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  return TestResult(float(t), _p_from_t(float(t), float(df), alternative), float(df), "Welch t")


def paired_t_test(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> TestResult:
  """Paired t-test of a_i - b_i (same seeds on both sides)."""
  _check_alternative(alternative)
  a, b = _as_array(a), _as_array(b)
  if a.shape != b.shape or a.size < 2:
    raise ValueError("a paired t-test needs two samples of equal length >= 2")
  d = a - b
  sd = float(d.std(ddof=1))
  df = float(d.size - 1)
  mean = float(d.mean())
  if sd == 0.0:
    return TestResult(math.copysign(math.inf, mean) if mean else 0.0, _degenerate(mean, alternative), df,
                      "paired t (zero spread)")
  t = mean / (sd / math.sqrt(d.size))
  return TestResult(t, _p_from_t(t, df, alternative), df, "paired t")


def pooled_standard_error(a: Sequence[float], b: Sequence[float]) -> float:
  """sqrt(s_a^2 / n_a + s_b^2 / n_b); a sample of one value contributes no spread."""
  total = 0.0
  for sample in (_as_array(a), _as_array(b)):
    if sample.size > 1:
      total += float(sample.var(ddof=1)) / sample.size
  return math.sqrt(total)


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
  """log y = intercept + slope log x, by least squares (scipy.stats.linregress)."""
  slope: float
  intercept: float
  slope_stderr: float
  r_value: float
  slope_ci: tuple[float, float]


def fit_power_law(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> PowerLawFit:
  """Fits y = C x^slope on log-log axes; the slope's confidence interval uses Student's t."""
  x, y = _as_array(x), _as_array(y)
  if x.shape != y.shape or x.size < 3:
    raise ValueError("a power-law fit needs at least three (x, y) pairs")
  if np.any(x <= 0) or np.any(y <= 0):
    raise ValueError("a power-law fit needs positive x and y")
  fit = sps.linregress(np.log(x), np.log(y))
  half = float(sps.t.ppf(0.5 + confidence / 2, x.size - 2) * fit.stderr)
  return PowerLawFit(float(fit.slope), float(fit.intercept), float(fit.stderr), float(fit.rvalue),
                     (float(fit.slope) - half, float(fit.slope) + half))


def bootstrap_ci(values: Sequence[float], statistic=np.mean, confidence: float = 0.95, seed: int = 0,
                 n_resamples: int = 2000) -> tuple[float, float]:
  """Percentile-BCa bootstrap interval of `statistic` (scipy.stats.bootstrap)."""
  values = _as_array(values)
  if values.size < 2 or np.all(values == values[0]):
    value = float(statistic(values))
    return value, value
  result = sps.bootstrap((values,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                         random_state=np.random.default_rng(seed), vectorized=False)
  return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclasses.dataclass(frozen=True)
class BootstrapPowerLaw:
  """Slope of log mean(y) against log x, with a percentile bootstrap interval over resampled seeds."""
  slope: float
  slope_ci: tuple[float, float]
  n_resamples: int
  n_valid: int   # resamples whose means were all positive (the others have no log-log slope)


def bootstrap_power_law(x: Sequence[float], samples: np.ndarray, confidence: float = 0.95, seed: int = 0,
                        n_resamples: int = 2000) -> BootstrapPowerLaw:
  """Fits mean_s y[s, i] = C x_i^slope and bootstraps the slope over the seeds s (rows of `samples`).

  `samples` is (seeds, len(x)): one row per seed, measured at every x (the same seeds at every x, so a
  resample keeps each seed's values together, as a paired design). The fit is of the seed MEANS (not a mean
  of per-seed slopes): a quantity with a seed-average that scales as x^slope, such as an unbiased estimate of
  a squared bias that single seeds may put below zero, has its slope here. Percentile interval of the
  resampled slopes; a resample whose mean at some x is not positive is dropped (counted in n_valid), and
  fewer than half the resamples valid raises ValueError.
  """
  x = _as_array(x)
  y = np.asarray(samples, dtype=np.float64)
  if y.ndim != 2 or y.shape[1] != x.size:
    raise ValueError(f"samples must be (seeds, {x.size}), got {y.shape}")
  if x.size < 3 or y.shape[0] < 2:
    raise ValueError("a bootstrap power-law fit needs at least three x values and two seeds")
  if np.any(x <= 0):
    raise ValueError("a power-law fit needs positive x")
  log_x = np.log(x)

  def slope_of(means: np.ndarray) -> np.ndarray:
    """Least-squares slopes of log means (rows: resamples) against log x."""
    centered = log_x - log_x.mean()
    logs = np.log(means)
    return (logs - logs.mean(axis=-1, keepdims=True)) @ centered / (centered @ centered)

  means = y.mean(axis=0)
  if np.any(means <= 0):
    raise ValueError(f"a power-law fit needs positive seed means, got {means}")
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, y.shape[0], size=(n_resamples, y.shape[0]))
  resampled = y[picks].mean(axis=1)  # (n_resamples, len(x))
  valid = np.all(resampled > 0, axis=1)
  if valid.sum() < n_resamples / 2:
    raise ValueError(f"only {int(valid.sum())} of {n_resamples} resamples have positive means at every x")
  slopes = slope_of(resampled[valid])
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(slopes, [tail, 100.0 - tail])
  return BootstrapPowerLaw(float(slope_of(means[None])[0]), (float(low), float(high)), n_resamples, int(valid.sum()))
