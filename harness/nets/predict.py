"""Kernel regression with NNGP / NTK kernels: GP posterior and infinite-width gradient descent on MSE.

Conventions follow neural-tangents' `nt.predict` (`gp_inference`, `gradient_descent_mse_ensemble`):

- Regularizer: `diag_reg` is RELATIVE, i.e. NT's `diag_reg_absolute_scale=False`: the matrix that is
  factorised is `K + diag_reg * mean(diag K) * I` (mean(diag K) = trace(K) / n).
- Kernels are scalar per pair of inputs (outputs traced, `trace_axes=(-1,)`): `k_train_train` is (n, n),
  `k_test_train` (m, n), and `y_train` (n, k) is regressed with the same kernel for every output column.
- Time: continuous-time gradient descent with learning rate eta on the loss
  `L = 1/(2 n k) * sum_ij (f_j(x_i) - y_ij)^2` (n = train size, k = outputs, NT's `y_train.size`
  normalisation), i.e. `df/dt = -eta/(n k) * Theta (f - y)`. The mean over initialisations of the
  infinite-width network then is (Lee et al. 2019, arXiv 1902.06720, Sec. 2.3.1, mean of the NTK Gaussian
  process; f_0 has zero mean so its term drops out):

      mu_t(x) = Theta(x, X) Theta^{-1} (I - exp(-eta t Theta / (n k))) Y,

  with Theta = K + diag_reg * mean(diag K) * I. mu_0 = 0 and mu_inf = Theta(x, X) Theta^{-1} Y, the kernel
  ridge / GP posterior mean. Pass the NTK for a network trained in all layers, the NNGP for one trained
  only in its readout layer.
- GP posterior (Rasmussen & Williams 2006, Eqs. 2.22-2.24, Algorithm 2.1): mean K*X (K + s I)^{-1} Y and
  covariance K** - K*X (K + s I)^{-1} KX*, via a Cholesky factor.

Everything runs in float64 numpy/scipy (n x n solves; n up to ~10k: the factor of a 10k kernel takes 0.8 GB).
Cholesky escalates a jitter (`JITTERS`, relative to mean(diag K), added on top of `diag_reg`) when the
matrix is numerically indefinite and records which jitter it used; when even the largest fails it raises
`NotPositiveDefiniteError` naming the smallest eigenvalue.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import linalg

from harness.nets import blocked_cholesky

# Relative jitters tried in order (0 = the matrix as given), capped at 1e-4 of the mean diagonal.
JITTERS = (0.0, 1e-10, 1e-8, 1e-6, 1e-4)
# Validation share of the training set carved out by `select_diag_reg` when no indices are given.
VALIDATION_FRACTION = 0.2


class NotPositiveDefiniteError(np.linalg.LinAlgError, ValueError):
  """A kernel matrix stayed numerically indefinite after the largest jitter in the schedule."""

  def __init__(self, message: str, min_eigenvalue: float, jitters_tried: Sequence[float]):
    super().__init__(message)
    self.min_eigenvalue = min_eigenvalue
    self.jitters_tried = tuple(jitters_tried)


def _as_matrix(k: np.ndarray, name: str) -> np.ndarray:
  k = np.asarray(k, dtype=np.float64)
  if k.ndim != 2:
    raise ValueError(f"{name} must be 2-D, got shape {k.shape}")
  return k


def _as_targets(y: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
  """(n, k) float64 targets and whether the caller passed a vector."""
  y = np.asarray(y, dtype=np.float64)
  vector = y.ndim == 1
  y = y[:, None] if vector else y
  if y.ndim != 2 or y.shape[0] != n:
    raise ValueError(f"y_train must be (n,) or (n, k) with n={n}, got shape {y.shape}")
  return y, vector


def mean_diagonal(k: np.ndarray) -> float:
  """trace(K) / n: the unit of `diag_reg` and of the jitters."""
  return float(np.trace(k)) / k.shape[0]


def regularize(k_train_train: np.ndarray, diag_reg: float) -> np.ndarray:
  """K + diag_reg * mean(diag K) * I (NT `diag_reg_absolute_scale=False`); returns a new float64 array."""
  k = np.array(k_train_train, dtype=np.float64)
  k[np.diag_indices_from(k)] += diag_reg * mean_diagonal(k)
  return k


@dataclasses.dataclass(frozen=True)
class Cholesky:
  """Lower Cholesky factor of K + (diag_reg + jitter) * mean(diag K) * I (blocked: in the lower triangle, stale
  values above the diagonal blocks; use solve / half_solve).

  jitter: the relative jitter that made the factorisation succeed (0.0: none was needed).
  """
  lower: np.ndarray
  diag_reg: float
  jitter: float
  block_size: int | None = None   # None: dense LAPACK factor; else blocked_cholesky's (solves a block at a time)

  def solve(self, b: np.ndarray) -> np.ndarray:
    if self.block_size is not None:
      y = blocked_cholesky.forward_solve(self.lower, b, self.block_size)
      return blocked_cholesky.backward_solve(self.lower, y, self.block_size)
    return linalg.cho_solve((self.lower, True), b, check_finite=False)

  def half_solve(self, b: np.ndarray) -> np.ndarray:
    """L^{-1} b, so that b^T (L L^T)^{-1} b = |L^{-1} b|^2."""
    if self.block_size is not None:
      return blocked_cholesky.forward_solve(self.lower, b, self.block_size)
    return linalg.solve_triangular(self.lower, b, lower=True, check_finite=False)


@dataclasses.dataclass(frozen=True)
class Solver:
  """How kernel systems are factorised: dense in memory (block_size None), or blocked (harness/nets/blocked_cholesky.py)
  with the factor in memory or, with `scratch_dir`, in a file there (memory: three n x block_size panels)."""
  block_size: int | None = None
  scratch_dir: str | None = None


DENSE = Solver()


def smallest_eigenvalue(k: np.ndarray) -> float:
  return float(linalg.eigvalsh(k, subset_by_index=[0, 0], check_finite=False)[0])


def cholesky(k_train_train: np.ndarray, diag_reg: float = 0.0,
             jitters: Sequence[float] = JITTERS, solver: Solver = DENSE) -> Cholesky:
  """Cholesky factor of the regularised kernel, escalating the jitter until it succeeds.

  Raises NotPositiveDefiniteError (a LinAlgError and a ValueError) naming the smallest eigenvalue of
  K + diag_reg * mean(diag K) * I when every jitter in `jitters` fails.
  """
  k = _as_matrix(k_train_train, "k_train_train")
  if k.shape[0] != k.shape[1]:
    raise ValueError(f"k_train_train must be square, got {k.shape}")
  scale = mean_diagonal(k)
  rows = blocked_cholesky.DEFAULT_BLOCK_SIZE   # checked a block of rows at a time: k may be a memmap past RAM
  if not np.isfinite(scale) or not all(np.all(np.isfinite(k[r0:r0 + rows])) for r0 in range(0, k.shape[0], rows)):
    raise ValueError("k_train_train has NaN or inf entries")
  if solver.block_size is not None:
    found = blocked_cholesky.try_jitters(k, scale, diag_reg, jitters, solver.block_size, solver.scratch_dir)
    if found is not None:
      return Cholesky(found[0], float(diag_reg), found[1], solver.block_size)
  else:
    for jitter in jitters:
      a = np.array(k)
      a[np.diag_indices_from(a)] += (diag_reg + jitter) * scale
      try:
        lower = linalg.cholesky(a, lower=True, overwrite_a=True, check_finite=False)
      except np.linalg.LinAlgError:
        continue
      return Cholesky(lower, float(diag_reg), float(jitter))
  # the smallest eigenvalue needs the dense matrix in memory: only below the blocked solver's sizes
  if solver.block_size is None:
    min_eig = smallest_eigenvalue(regularize(k, diag_reg))
    eigenvalue = f"{min_eig:.3e}"
  else:
    min_eig, eigenvalue = float("nan"), "not computed (blocked solver)"
  raise NotPositiveDefiniteError(
      f"kernel matrix ({k.shape[0]}x{k.shape[0]}, mean diagonal {scale:.3g}, diag_reg {diag_reg:g}) is not "
      f"positive definite: smallest eigenvalue {eigenvalue}; Cholesky failed with relative jitters up to "
      f"{max(jitters):g}. Raise diag_reg or compute the kernel in float64.", min_eig, jitters)


@dataclasses.dataclass(frozen=True)
class GaussianPrediction:
  """Posterior over test outputs. variance: (m,) diagonal or (m, m) full, shared by every output column."""
  mean: np.ndarray
  variance: np.ndarray | None
  jitter: float


def gp_posterior(k_train_train: np.ndarray, k_test_train: np.ndarray, y_train: np.ndarray,
                 k_test_test: np.ndarray | None = None, diag_reg: float = 0.0,
                 full_covariance: bool = False, jitters: Sequence[float] = JITTERS,
                 solver: Solver = DENSE) -> GaussianPrediction:
  """NNGP (or any GP) posterior on the test set (Rasmussen & Williams 2006, Eqs. 2.22-2.24, Alg. 2.1).

  k_test_test: None (no variance), the (m,) diagonal, or the full (m, m) test-test kernel. With
  `full_covariance` (needs the full matrix) the variance is the (m, m) posterior covariance, else its
  diagonal. The noise term of R&W is `diag_reg * mean(diag k_train_train)`.
  """
  factor = cholesky(k_train_train, diag_reg, jitters, solver)
  n = factor.lower.shape[0]
  k_xt = _as_matrix(k_test_train, "k_test_train")
  if k_xt.shape[1] != n:
    raise ValueError(f"k_test_train must be (m, {n}), got {k_xt.shape}")
  y, vector = _as_targets(y_train, n)
  mean = k_xt @ factor.solve(y)
  mean = mean[:, 0] if vector else mean
  if k_test_test is None:
    if full_covariance:
      raise ValueError("full_covariance needs the full k_test_test")
    return GaussianPrediction(mean, None, factor.jitter)
  k_tt = np.asarray(k_test_test, dtype=np.float64)
  v = factor.half_solve(k_xt.T)  # (n, m)
  if full_covariance:
    if k_tt.shape != (k_xt.shape[0],) * 2:
      raise ValueError(f"full_covariance needs k_test_test of shape {(k_xt.shape[0],) * 2}, got {k_tt.shape}")
    variance = k_tt - v.T @ v
  else:
    diag = np.diagonal(k_tt) if k_tt.ndim == 2 else k_tt
    if diag.shape != (k_xt.shape[0],):
      raise ValueError(f"k_test_test must be (m,) or (m, m) with m={k_xt.shape[0]}, got {k_tt.shape}")
    variance = diag - np.einsum("ij,ij->j", v, v)
  return GaussianPrediction(mean, variance, factor.jitter)


def _one_minus_exp_over(evals: np.ndarray, s: np.ndarray) -> np.ndarray:
  """(1 - exp(-lambda s)) / lambda, continuous at lambda = 0 (value s); negative lambdas clamped to 0 as in NT."""
  lam = np.maximum(evals, 0.0)[None, :]
  s = s[:, None]
  x = lam * s
  small = x < 1e-8
  safe_lam = np.where(small, 1.0, lam)
  with np.errstate(invalid="ignore", over="ignore"):
    exact = -np.expm1(-x) / safe_lam
  return np.where(small, s * (1.0 - 0.5 * x), exact)


def gradient_descent_mse_mean(k_train_train: np.ndarray, k_test_train: np.ndarray, y_train: np.ndarray,
                              t: float | np.ndarray = np.inf, learning_rate: float = 1.0,
                              diag_reg: float = 0.0, jitters: Sequence[float] = JITTERS,
                              solver: Solver = DENSE) -> np.ndarray:
  """Mean test output of infinitely wide nets trained by gradient flow on MSE for time t (module docstring).

  mu_t = K_test,train K^{-1} (I - exp(-learning_rate * t * K / y_train.size)) y_train with
  K = k_train_train + diag_reg * mean(diag) * I (Lee et al. 2019, arXiv 1902.06720, Sec. 2.3.1; matches
  `nt.predict.gradient_descent_mse_ensemble(...)(t, x_test, get=...)`). `t` may be an array: the result
  has shape t.shape + y_test shape. Finite times go through the eigendecomposition of K (eigenvalues
  clamped at 0 like NT); t = inf through a jittered Cholesky solve, i.e. the kernel ridge solution.
  Pass k_test_train = k_train_train for the training-set trajectory.
  """
  k = _as_matrix(k_train_train, "k_train_train")
  k_xt = _as_matrix(k_test_train, "k_test_train")
  n = k.shape[0]
  if k_xt.shape[1] != n:
    raise ValueError(f"k_test_train must be (m, {n}), got {k_xt.shape}")
  y, vector = _as_targets(y_train, n)
  t = np.asarray(t, dtype=np.float64)
  if np.any(t < 0) or np.any(np.isnan(t)):
    raise ValueError(f"t must be >= 0, got {t}")
  flat_t = t.reshape(-1)
  out = np.empty((flat_t.size, k_xt.shape[0], y.shape[1]))
  infinite = np.isinf(flat_t)
  if infinite.any():
    out[infinite] = k_xt @ cholesky(k, diag_reg, jitters, solver).solve(y)
  if (~infinite).any():
    evals, evecs = linalg.eigh(regularize(k, diag_reg), check_finite=False)
    s = flat_t[~infinite] * learning_rate / y.size
    coef = _one_minus_exp_over(evals, s)  # (T, n)
    projected_y = evecs.T @ y  # (n, k)
    k_xt_evecs = k_xt @ evecs  # (m, n)
    out[~infinite] = np.einsum("mi,ti,ik->tmk", k_xt_evecs, coef, projected_y)
  out = out.reshape(t.shape + out.shape[1:])
  return out[..., 0] if vector else out


def _scores(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float]:
  """(accuracy, mse): accuracy by argmax over several output columns (NaN for a single column)."""
  mse = float(np.mean((prediction - target) ** 2))
  if target.shape[1] < 2:
    return float("nan"), mse
  return float(np.mean(prediction.argmax(1) == target.argmax(1))), mse


def _submatrix(k: np.ndarray, rows: np.ndarray, cols: np.ndarray, solver: Solver) -> np.ndarray:
  """k[rows][:, cols], a block of rows at a time into the solver's scratch file when it has one (kernels on disk)."""
  if solver.scratch_dir is None:
    return k[np.ix_(rows, cols)]
  out = blocked_cholesky.scratch_array((len(rows), len(cols)), solver.scratch_dir)
  step = solver.block_size or blocked_cholesky.DEFAULT_BLOCK_SIZE
  for r0 in range(0, len(rows), step):
    out[r0:r0 + step] = k[rows[r0:r0 + step]][:, cols]
  return out


def select_diag_reg(k_train_train: np.ndarray, y_train: np.ndarray, candidates: Sequence[float],
                    val_fraction: float = VALIDATION_FRACTION, val_indices: Sequence[int] | None = None,
                    seed: int = 0, jitters: Sequence[float] = JITTERS,
                    solver: Solver = DENSE) -> tuple[float, list[dict]]:
  """Pick `diag_reg` on a validation split carved from the TRAINING set only (no test data involved).

  Fits the kernel-ridge / GP mean on the remaining training points for every candidate and scores the
  held-out part by accuracy (argmax; only with >= 2 output columns), ties and single outputs broken by MSE.
  Returns (best diag_reg, table) where each table row is {diag_reg, accuracy, mse, jitter, error}.
  A candidate whose kernel stays indefinite gets error set and is never chosen; if all fail, the last
  NotPositiveDefiniteError is raised.
  """
  k = _as_matrix(k_train_train, "k_train_train")
  n = k.shape[0]
  y, _ = _as_targets(y_train, n)
  if val_indices is None:
    if not 0.0 < val_fraction < 1.0:
      raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = max(1, int(round(val_fraction * n)))
    val = np.random.default_rng(seed).permutation(n)[:n_val]
  else:
    val = np.unique(np.asarray(val_indices, dtype=np.int64))
    if val.size == 0 or val.min() < 0 or val.max() >= n:
      raise ValueError(f"val_indices must be non-empty indices into the {n} training points")
  fit = np.setdiff1d(np.arange(n), val)
  if fit.size == 0:
    raise ValueError("validation split leaves no training points")
  k_fit, k_val_fit = _submatrix(k, fit, fit, solver), k[np.ix_(val, fit)]
  table, last_error = [], None
  for reg in candidates:
    row = {"diag_reg": float(reg), "accuracy": float("nan"), "mse": float("nan"), "jitter": float("nan"),
           "error": None}
    try:
      prediction = gp_posterior(k_fit, k_val_fit, y[fit], diag_reg=reg, jitters=jitters, solver=solver)
    except NotPositiveDefiniteError as e:
      row["error"], last_error = str(e), e
    else:
      row["accuracy"], row["mse"] = _scores(prediction.mean, y[val])
      row["jitter"] = prediction.jitter
    table.append(row)
  usable = [row for row in table if row["error"] is None]
  if not usable:
    raise last_error
  best = min(usable, key=lambda r: (-(r["accuracy"] if np.isfinite(r["accuracy"]) else 0.0), r["mse"]))
  return best["diag_reg"], table
