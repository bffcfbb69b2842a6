"""Kernel regression against direct dense solves (numpy.linalg.solve, scipy.linalg.expm) and hand-worked numbers."""
import numpy as np
import pytest
from scipy import linalg

from harness.nets import predict

N_TRAIN, N_TEST, N_OUT, DIM = 12, 5, 3, 7
SEED = 0
RTOL = 1e-9


def _problem(seed=SEED, n=N_TRAIN, m=N_TEST, k=N_OUT, d=DIM):
  """An RBF kernel on random points: positive definite, not diagonal, with a spread of eigenvalues."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n + m, d))
  sq = np.sum((x[:, None] - x[None]) ** 2, -1)
  kernel = 1.7 * np.exp(-sq / (2 * d))
  y = rng.normal(size=(n, k))
  return kernel[:n, :n], kernel[n:, :n], kernel[n:, n:], y


def test_gp_posterior_hand_worked_1x1():
  # K = 2, k* = 1, k** = 3, y = 4: mean = 1 * 4 / 2 = 2, variance = 3 - 1 * 1 / 2 = 2.5
  out = predict.gp_posterior([[2.0]], [[1.0]], [4.0], k_test_test=[[3.0]])
  assert out.mean == pytest.approx([2.0])
  assert out.variance == pytest.approx([2.5])
  # relative diag_reg 0.5 on mean diagonal 2 adds 1: mean 4/3, variance 3 - 1/3
  out = predict.gp_posterior([[2.0]], [[1.0]], [4.0], k_test_test=[3.0], diag_reg=0.5)
  assert out.mean == pytest.approx([4 / 3])
  assert out.variance == pytest.approx([3 - 1 / 3])


@pytest.mark.parametrize("diag_reg", [0.0, 1e-3, 0.3])
def test_gp_posterior_matches_dense_solve(diag_reg):
  k_dd, k_td, k_tt, y = _problem()
  reg = k_dd + diag_reg * np.trace(k_dd) / N_TRAIN * np.eye(N_TRAIN)
  mean = k_td @ np.linalg.solve(reg, y)
  cov = k_tt - k_td @ np.linalg.solve(reg, k_td.T)
  full = predict.gp_posterior(k_dd, k_td, y, k_test_test=k_tt, diag_reg=diag_reg, full_covariance=True)
  diag = predict.gp_posterior(k_dd, k_td, y, k_test_test=np.diag(k_tt), diag_reg=diag_reg)
  np.testing.assert_allclose(full.mean, mean, rtol=RTOL, atol=1e-10)
  np.testing.assert_allclose(full.variance, cov, rtol=1e-7, atol=1e-10)
  np.testing.assert_allclose(diag.variance, np.diag(cov), rtol=1e-7, atol=1e-10)
  assert full.jitter == 0.0


def test_gd_mean_matches_matrix_exponential():
  k_dd, k_td, _, y = _problem()
  lr, diag_reg = 0.7, 1e-2
  reg = k_dd + diag_reg * np.trace(k_dd) / N_TRAIN * np.eye(N_TRAIN)
  times = np.array([0.0, 1.0, 30.0, 1e3])
  got = predict.gradient_descent_mse_mean(k_dd, k_td, y, t=times, learning_rate=lr, diag_reg=diag_reg)
  assert got.shape == (times.size, N_TEST, N_OUT)
  for t, g in zip(times, got):
    # NT time convention: exp(-lr * t * K / y.size), y.size = n * k
    decay = np.eye(N_TRAIN) - linalg.expm(-lr * t * reg / y.size)
    np.testing.assert_allclose(g, k_td @ np.linalg.solve(reg, decay @ y), rtol=1e-7, atol=1e-10)
  np.testing.assert_array_equal(got[0], 0.0)


def test_gd_mean_infinite_time_is_ridge_solution():
  k_dd, k_td, _, y = _problem()
  diag_reg = 0.05
  reg = k_dd + diag_reg * np.trace(k_dd) / N_TRAIN * np.eye(N_TRAIN)
  ridge = k_td @ np.linalg.solve(reg, y)
  got = predict.gradient_descent_mse_mean(k_dd, k_td, y, t=np.inf, diag_reg=diag_reg)
  np.testing.assert_allclose(got, ridge, rtol=RTOL, atol=1e-12)
  # a long finite time through the eigenbasis converges to the same point
  late = predict.gradient_descent_mse_mean(k_dd, k_td, y, t=1e9, diag_reg=diag_reg)
  np.testing.assert_allclose(late, ridge, rtol=1e-7, atol=1e-10)
  # without a regularizer the training set is interpolated
  train = predict.gradient_descent_mse_mean(k_dd, k_dd, y, t=np.inf)
  np.testing.assert_allclose(train, y, rtol=1e-7, atol=1e-8)


def test_gd_mean_vector_targets_and_time_grid_shape():
  k_dd, k_td, _, y = _problem()
  times = np.array([[0.5, 2.0], [np.inf, 8.0]])
  got = predict.gradient_descent_mse_mean(k_dd, k_td, y[:, 0], t=times)
  assert got.shape == (2, 2, N_TEST)
  one = predict.gradient_descent_mse_mean(k_dd, k_td, y[:, :1], t=8.0)
  np.testing.assert_allclose(got[1, 1], one[:, 0], rtol=RTOL)


def test_gd_mean_handles_singular_kernel_at_finite_time():
  # rank-1 kernel: finite-time GD is well defined (only the top eigendirection moves), t=inf is not
  v = np.arange(1.0, 5.0)
  k_dd = np.outer(v, v)
  y = np.array([1.0, -1.0, 2.0, 0.5])
  lam = v @ v
  t = 3.0
  expected = k_dd @ (v * (v @ y) / lam) * (1 - np.exp(-lam * t / y.size)) / lam
  got = predict.gradient_descent_mse_mean(k_dd, k_dd, y, t=t)
  np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_cholesky_escalates_jitter_and_records_it():
  rng = np.random.default_rng(SEED)
  features = rng.normal(size=(40, 5))
  k = features @ features.T  # rank 5 of 40: singular in exact arithmetic
  factor = predict.cholesky(k)
  assert factor.jitter > 0.0
  assert factor.jitter in predict.JITTERS
  scale = (factor.diag_reg + factor.jitter) * np.trace(k) / 40
  np.testing.assert_allclose(factor.lower @ factor.lower.T, k + scale * np.eye(40), atol=1e-8)
  # a well-conditioned matrix needs none
  assert predict.cholesky(np.eye(3) * 2.0).jitter == 0.0


def test_not_positive_definite_error_names_smallest_eigenvalue():
  k = np.diag([1.0, 1.0, -0.5])
  with pytest.raises(predict.NotPositiveDefiniteError, match=r"smallest eigenvalue -5\.000e-01") as info:
    predict.gp_posterior(k, np.ones((1, 3)), np.ones(3))
  assert info.value.min_eigenvalue == pytest.approx(-0.5)
  assert isinstance(info.value, np.linalg.LinAlgError) and isinstance(info.value, ValueError)
  # a relative diag_reg large enough to lift it succeeds: mean diagonal 0.5, 2 * 0.5 = 1 > 0.5
  assert predict.cholesky(k, diag_reg=2.0).jitter == 0.0


def test_select_diag_reg_matches_manual_validation_and_uses_train_only():
  k_dd, _, _, y = _problem(n=30, k=4)
  y = np.eye(4)[np.argmax(y, 1)]  # one-hot labels
  val = np.arange(0, 30, 3)
  fit = np.setdiff1d(np.arange(30), val)
  candidates = [0.0, 1e-2, 1.0]
  best, table = predict.select_diag_reg(k_dd, y, candidates, val_indices=val)
  assert [row["diag_reg"] for row in table] == candidates
  for row in table:
    kf = k_dd[np.ix_(fit, fit)]
    reg = kf + row["diag_reg"] * np.trace(kf) / fit.size * np.eye(fit.size)
    pred = k_dd[np.ix_(val, fit)] @ np.linalg.solve(reg, y[fit])
    assert row["mse"] == pytest.approx(np.mean((pred - y[val]) ** 2), rel=1e-8)
    assert row["accuracy"] == pytest.approx(np.mean(pred.argmax(1) == y[val].argmax(1)))
  ranked = sorted(table, key=lambda r: (-r["accuracy"], r["mse"]))
  assert best == ranked[0]["diag_reg"]


def test_select_diag_reg_prefers_moderate_regularisation_on_noisy_targets():
  # kernel = 3 signal features + a small 200-dim part that lets diag_reg=0 interpolate the label noise;
  # diag_reg=1e4 (relative) shrinks every prediction to ~0. Validation MSE must prefer the middle.
  rng = np.random.default_rng(4)
  n = 80
  signal, spread = rng.normal(size=(n, 3)), rng.normal(size=(n, 200)) / np.sqrt(200)
  k = signal @ signal.T + 0.05 * spread @ spread.T
  y = signal @ rng.normal(size=(3, 1)) + 0.7 * rng.normal(size=(n, 1))
  best, table = predict.select_diag_reg(k, y, [0.0, 0.1, 1e4], val_fraction=0.25, seed=SEED)
  mse = {row["diag_reg"]: row["mse"] for row in table}
  assert best == 0.1
  assert mse[0.1] < 0.9 * min(mse[0.0], mse[1e4])
  assert all(np.isnan(row["accuracy"]) for row in table)  # single output: scored by MSE


def test_select_diag_reg_skips_indefinite_candidates():
  k = np.diag([1.0, 1.0, 1.0, -0.6, 1.0, 1.0])
  y = np.eye(2)[[0, 1, 0, 1, 0, 1]]
  best, table = predict.select_diag_reg(k, y, [0.0, 2.0], val_indices=[0, 1])
  assert table[0]["error"] is not None and "smallest eigenvalue" in table[0]["error"]
  assert best == 2.0
  with pytest.raises(predict.NotPositiveDefiniteError):
    predict.select_diag_reg(k, y, [0.0], val_indices=[0, 1])
