"""The blocked Cholesky (factor in memory or in a file) equals LAPACK's dense one to rounding, and so do the kernel
regressions built on it (GP posterior, diag_reg selection, jitter escalation)."""
import numpy as np
import pytest
from scipy import linalg

from harness.nets import blocked_cholesky, predict

N, BLOCK = 150, 64      # 3 blocks, the last one short
EPS = np.finfo(np.float64).eps
SOLVERS = {"memory": lambda tmp: predict.Solver(BLOCK), "file": lambda tmp: predict.Solver(BLOCK, str(tmp))}


def _kernel(n=N, seed=0):
  """An arc-cosine (ReLU NNGP) kernel of random inputs: positive definite, condition number about 1e3."""
  x = np.random.default_rng(seed).normal(size=(n, 20))
  norms = np.linalg.norm(x, axis=1)
  cos = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
  theta = np.arccos(cos)
  return np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi) + 0.1


@pytest.mark.parametrize("where", sorted(SOLVERS))
def test_factor_and_solves_equal_lapack(tmp_path, where):
  k = _kernel()
  solver = SOLVERS[where](tmp_path)
  blocked = predict.cholesky(k, diag_reg=1e-3, solver=solver)
  dense = predict.cholesky(k, diag_reg=1e-3)
  assert isinstance(blocked.lower, np.memmap) == (where == "file")
  assert blocked.jitter == dense.jitter == 0.0
  # Higham 2002 Thm 10.3: |dL| <= c n u |L||L^T|-scale; blocking changes only the summation order
  scale = np.sqrt(np.outer(np.diag(k), np.diag(k))).max()
  np.testing.assert_allclose(np.tril(blocked.lower), dense.lower, atol=4 * N * EPS * np.sqrt(scale))
  b = np.random.default_rng(1).normal(size=(N, 3))
  cond = np.linalg.cond(predict.regularize(k, 1e-3))
  np.testing.assert_allclose(blocked.solve(b), dense.solve(b), rtol=4 * N * EPS * cond)
  np.testing.assert_allclose(blocked.half_solve(b), dense.half_solve(b), rtol=4 * N * EPS * cond)
  assert not list(tmp_path.iterdir())   # the factor's file is unlinked as soon as it is mapped


def test_regressions_through_the_blocked_solver_equal_dense(tmp_path):
  k = _kernel(200)
  y = np.eye(4)[np.random.default_rng(2).integers(0, 4, size=200)]
  k_test = _kernel(260)[200:, :200]
  solver = predict.Solver(BLOCK, str(tmp_path))
  dense = predict.gp_posterior(k, k_test, y, diag_reg=1e-2).mean
  blocked = predict.gp_posterior(k, k_test, y, diag_reg=1e-2, solver=solver).mean
  np.testing.assert_allclose(blocked, dense, rtol=1e-9, atol=1e-12)
  candidates = (1e-4, 1e-2, 1.0)
  reg_dense, table_dense = predict.select_diag_reg(k, y, candidates, seed=3)
  reg_blocked, table_blocked = predict.select_diag_reg(k, y, candidates, seed=3, solver=solver)
  assert reg_blocked == reg_dense
  np.testing.assert_allclose([r["mse"] for r in table_blocked], [r["mse"] for r in table_dense], rtol=1e-9)
  mean_inf = predict.gradient_descent_mse_mean(k, k_test, y, diag_reg=1e-2, solver=solver)
  np.testing.assert_allclose(mean_inf, dense, rtol=1e-9, atol=1e-12)


def test_jitter_escalates_as_in_the_dense_path():
  """A rank-deficient kernel (20 distinct inputs repeated): both paths need the same jitter."""
  k = _kernel(20)
  k = np.kron(np.ones((3, 3)), k)[:50, :50]
  dense = predict.cholesky(k)
  blocked = predict.cholesky(k, solver=predict.Solver(16))
  assert blocked.jitter == dense.jitter > 0
  with pytest.raises(predict.NotPositiveDefiniteError, match="not positive definite"):
    predict.cholesky(-k, solver=predict.Solver(16))


def test_factor_in_place_matches_scipy_for_every_block_size():
  k = _kernel(37) + np.eye(37)
  expected = linalg.cholesky(k, lower=True)
  for block in (1, 5, 36, 37, 100):
    a = np.array(k)
    blocked_cholesky.factor_in_place(a, block)
    np.testing.assert_allclose(np.tril(a), expected, atol=100 * EPS * np.abs(expected).max())
