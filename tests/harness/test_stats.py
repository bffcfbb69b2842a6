"""Statistics on hand-worked examples."""
import math

import numpy as np
import pytest

from harness import stats


def test_welch_hand_worked():
  # a: mean 2.5, s^2 5/3; b: mean 5, s^2 20/3; se^2 = 5/12 + 5/3 = 25/12; t = -2.5 / sqrt(25/12) = -sqrt(3)
  # df = (25/12)^2 / ((5/12)^2/3 + (5/3)^2/3) = (625/144) / (25/432 + 400/432) = 75/17
  result = stats.welch_t_test([1, 2, 3, 4], [2, 4, 6, 8])
  assert result.statistic == pytest.approx(-math.sqrt(3), rel=1e-12)
  assert result.df == pytest.approx(75 / 17, rel=1e-12)
  from scipy import stats as sps
  assert result.p_value == pytest.approx(2 * sps.t.sf(math.sqrt(3), 75 / 17), rel=1e-12)


def test_welch_sidedness():
  low, high = [0.0, 0.1, -0.1, 0.05], [1.0, 1.1, 0.9, 1.05]
  assert stats.welch_t_test(low, high, "less").p_value < 1e-4
  assert stats.welch_t_test(low, high, "greater").p_value > 0.999
  two = stats.welch_t_test(low, high).p_value
  assert two == pytest.approx(2 * stats.welch_t_test(low, high, "less").p_value)


def test_prediction_interval_single_value():
  # reference [1,2,3]: mean 2, s 1; scale = sqrt(1 + 1/3); t = (5 - 2) / scale = 3 sqrt(3)/2, df = 2
  result = stats.welch_t_test([5.0], [1.0, 2.0, 3.0])
  assert result.statistic == pytest.approx(3 * math.sqrt(3) / 2, rel=1e-12)
  assert result.df == 2
  # symmetric when the single value is on the other side
  assert stats.welch_t_test([1.0, 2.0, 3.0], [5.0]).statistic == pytest.approx(-result.statistic)


def test_zero_spread_is_exact():
  assert stats.welch_t_test([1, 1, 1], [1, 1]).p_value == 1.0
  assert stats.welch_t_test([1, 1, 1], [2, 2]).p_value == 0.0
  assert stats.welch_t_test([1, 1, 1], [2, 2], "greater").p_value == 1.0


def test_paired_hand_worked():
  # d = [1, 2, 3]: mean 2, sd 1, t = 2 / (1/sqrt 3) = 2 sqrt 3
  result = stats.paired_t_test([2, 4, 6], [1, 2, 3], "greater")
  assert result.statistic == pytest.approx(2 * math.sqrt(3))
  assert result.df == 2


def test_pooled_standard_error():
  assert stats.pooled_standard_error([1, 3], [2, 2, 2, 2]) == pytest.approx(1.0)
  assert stats.pooled_standard_error([1, 3], [5]) == pytest.approx(1.0)


def test_power_law_fit_exact_and_noisy():
  x = np.array([16, 32, 64, 128, 256.0])
  fit = stats.fit_power_law(x, 3 * x ** -0.5)
  assert fit.slope == pytest.approx(-0.5, abs=1e-12)
  assert math.exp(fit.intercept) == pytest.approx(3.0)
  noisy = 3 * x ** -0.5 * np.exp(np.random.default_rng(0).normal(0, 0.05, x.size))
  fit = stats.fit_power_law(x, noisy)
  assert fit.slope_ci[0] < -0.5 < fit.slope_ci[1]
  with pytest.raises(ValueError):
    stats.fit_power_law([1, 2], [1, 2])


def test_bootstrap_ci_covers_mean():
  values = np.random.default_rng(1).normal(10, 1, 40)
  low, high = stats.bootstrap_ci(values)
  assert low < 10 < high and high - low < 1.5


def test_bad_alternative():
  with pytest.raises(ValueError):
    stats.welch_t_test([1, 2], [3, 4], alternative="bigger")


def _synthetic(exponent: float, seeds: int = 8, spread: float = 0.3, seed: int = 0):
  """seeds x widths samples whose seed mean is 2 n^exponent; each seed's value scattered by `spread` (relative),
  some negative when spread > 1 (an unbiased squared-bias estimate)."""
  n = np.array([32, 64, 128, 256, 512.0])
  noise = np.random.default_rng(seed).normal(0.0, spread, (seeds, n.size))
  return n, 2.0 * n ** exponent * (1.0 + noise)


def test_bootstrap_power_law_recovers_a_known_exponent():
  for exponent in (-0.5, -1.0, -2.0):
    n, samples = _synthetic(exponent)
    fit = stats.bootstrap_power_law(n, samples)
    assert fit.slope_ci[0] < exponent < fit.slope_ci[1]
    assert fit.slope_ci[1] - fit.slope_ci[0] < 0.5
    wrong = exponent + 0.5   # the interval of the true exponent excludes a wrong one
    assert not fit.slope_ci[0] < wrong < fit.slope_ci[1]


def test_bootstrap_power_law_with_negative_single_seeds():
  n, samples = _synthetic(-2.0, seeds=16, spread=1.2, seed=3)
  assert (samples < 0).any()
  fit = stats.bootstrap_power_law(n, samples)
  assert fit.slope_ci[0] < -2.0 < fit.slope_ci[1] and fit.n_valid <= fit.n_resamples


def test_bootstrap_power_law_coverage():
  """Over 40 synthetic experiments the 90% interval covers the true exponent about 90% of the time."""
  covered = 0
  for rep in range(40):
    n, samples = _synthetic(-1.0, seeds=8, spread=0.4, seed=100 + rep)
    low, high = stats.bootstrap_power_law(n, samples, confidence=0.9, seed=rep, n_resamples=500).slope_ci
    covered += low < -1.0 < high
  assert 28 <= covered <= 40


def test_bootstrap_power_law_rejects_bad_input():
  n, samples = _synthetic(-1.0)
  with pytest.raises(ValueError):
    stats.bootstrap_power_law(n[:2], samples[:, :2])
  with pytest.raises(ValueError):
    stats.bootstrap_power_law(n, samples[:1])
  with pytest.raises(ValueError):
    stats.bootstrap_power_law(n, -np.abs(samples))
