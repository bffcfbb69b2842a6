"""Cholesky factor and solves of a kernel matrix block by block, the factor in place in an array or a file on disk.

For kernels past a dense in-memory factorisation (a 60k x 60k float64 kernel is 29 GB, and `predict.cholesky`
holds the matrix, its regularised copy and the factor), the right-looking blocked Cholesky (Golub & Van Loan,
Matrix Computations, 4th ed. 2013, Sec. 4.2.9, "A block Cholesky") overwrites the lower triangle of an (n, n)
array with L, a block column at a time:

    L_kk = chol(A_kk);   L_ik = A_ik L_kk^-T  (i > k);   A_ij -= L_ik L_jk^T  (i >= j > k),

with the trailing update done one block column at a time. The array may be an .npy memmap (`scratch_dir`): then
the factor lives on disk (n^2 x 8 bytes) and the memory held is three panels of n x block_size floats (the block
column read, its solved copy, one trailing update's product: 3 x 50,000 x 4,096 x 8 bytes = 4.9 GB at the paper
size), plus the page cache the OS lends. Solves read the factor a block row (forward) or block column (backward) at a time.
The result equals the dense factorisation to rounding: the same operations per entry, summed in another order
(Higham 2002, Theorem 10.3: the backward error bound of Cholesky does not depend on the blocking).
"""
from __future__ import annotations

import os
import tempfile
from typing import Sequence

import numpy as np
from scipy import linalg

from harness.nets import _batching

DEFAULT_BLOCK_SIZE = 4096


def _copy_regularized(k: np.ndarray, out: np.ndarray, shift: float, block_size: int) -> None:
  """out = k + shift I, a block of rows at a time (k may be a memmap too)."""
  for r0, r1 in _batching.blocks(k.shape[0], block_size):
    rows = np.array(k[r0:r1], dtype=np.float64)
    rows[np.arange(r1 - r0), np.arange(r0, r1)] += shift
    out[r0:r1] = rows


def factor_in_place(a: np.ndarray, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
  """Overwrites the lower triangle of the symmetric positive definite `a` with its Cholesky factor (module
  docstring); the blocks above the diagonal keep stale values (the solves never read them).
  Raises np.linalg.LinAlgError when a diagonal block is not positive definite."""
  n = a.shape[0]
  for k0, k1 in _batching.blocks(n, block_size):
    l_kk = linalg.cholesky(np.array(a[k0:k1, k0:k1]), lower=True, check_finite=False)
    a[k0:k1, k0:k1] = l_kk
    if k1 == n:
      break
    # L_ik = A_ik L_kk^-T for every block row below, as one (n - k1, b) panel
    panel = linalg.solve_triangular(l_kk, np.array(a[k1:, k0:k1]).T, lower=True, check_finite=False).T
    a[k1:, k0:k1] = panel
    for j0, j1 in _batching.blocks(n - k1, block_size):
      a[k1 + j0:, k1 + j0:k1 + j1] -= panel[j0:] @ panel[j0:j1].T


def forward_solve(lower: np.ndarray, b: np.ndarray, block_size: int) -> np.ndarray:
  """L^-1 b, reading L a block row at a time."""
  y = np.array(b, dtype=np.float64)
  for i0, i1 in _batching.blocks(lower.shape[0], block_size):
    if i0:
      y[i0:i1] -= np.asarray(lower[i0:i1, :i0]) @ y[:i0]
    y[i0:i1] = linalg.solve_triangular(np.asarray(lower[i0:i1, i0:i1]), y[i0:i1], lower=True, check_finite=False)
  return y


def backward_solve(lower: np.ndarray, y: np.ndarray, block_size: int) -> np.ndarray:
  """L^-T y, reading L a block column at a time."""
  x = np.array(y, dtype=np.float64)
  n = lower.shape[0]
  for i0, i1 in reversed(_batching.blocks(n, block_size)):
    if i1 < n:
      x[i0:i1] -= np.asarray(lower[i1:, i0:i1]).T @ x[i1:]
    x[i0:i1] = linalg.solve_triangular(np.asarray(lower[i0:i1, i0:i1]), x[i0:i1], lower=True, trans="T",
                                       check_finite=False)
  return x


def scratch_array(shape: tuple[int, ...], scratch_dir: str | None) -> np.ndarray:
  """A float64 array in memory, or an .npy memmap in `scratch_dir` (the file deleted when the array is dropped)."""
  if scratch_dir is None:
    return np.empty(shape)
  os.makedirs(scratch_dir, exist_ok=True)
  fd, path = tempfile.mkstemp(prefix="cholesky_factor_", suffix=".npy", dir=scratch_dir)
  os.close(fd)
  a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=tuple(shape))
  os.unlink(path)  # POSIX: the mapping keeps the file's blocks until it is dropped, then the disk space is freed
  return a


def try_jitters(k: np.ndarray, scale: float, diag_reg: float, jitters: Sequence[float], block_size: int,
                scratch_dir: str | None) -> tuple[np.ndarray, float] | None:
  """(factor of k + (diag_reg + jitter) scale I, jitter) for the first jitter that succeeds; None if none does."""
  a = scratch_array(k.shape, scratch_dir)
  for jitter in jitters:
    _copy_regularized(k, a, (diag_reg + jitter) * scale, block_size)
    try:
      factor_in_place(a, block_size)
    except np.linalg.LinAlgError:
      continue
    return a, float(jitter)
  return None
