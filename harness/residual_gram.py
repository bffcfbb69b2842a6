"""Finite-width residual nets on a few inputs, simulated exactly in distribution by the Gram recursion.

The net: Y_0 = W_in x, Y_l = Y_(l-1) + s W_l phi(Y_(l-1)), l = 1..L, weights N(0, 1/fan_in), no biases. Given
Y_(l-1) (n x P for P inputs), the rows of W_l phi(Y_(l-1)) are i.i.d. N(0, G) with G = phi^T phi / n, because
W_l is fresh Gaussian and used once (Li, Nica & Roy 2022, arXiv 2206.02768, the covariance Markov chain). So
Y_l = Y_(l-1) + s Z A with Z n x P standard normal and A^T A = G: O(n P^2) per block instead of O(n^2 P).
`simulate_weights` draws the explicit weight matrices instead (O(n^2) per block), to test the recursion.
"""
from __future__ import annotations

import concurrent.futures
import math
import os
from typing import Callable, Sequence

import numpy as np
from scipy import special

ACTIVATIONS = ("relu", "erf")


def activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
  """phi by name: relu or erf."""
  if name not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
  return {"relu": lambda y: np.maximum(y, 0.0), "erf": special.erf}[name]


def psd_factor(k: np.ndarray) -> np.ndarray:
  """A with A^T A = k for symmetric PSD k (batched on leading axes): Cholesky, eigh where it fails."""
  try:
    return np.swapaxes(np.linalg.cholesky(k), -1, -2)
  except np.linalg.LinAlgError:
    w, v = np.linalg.eigh(k)
    return np.swapaxes(v * np.sqrt(np.clip(w, 0.0, None))[..., None, :], -1, -2)


def simulate_gram(k0: np.ndarray, width: int, depth: int, branch_scale: float, activation_name: str, num_nets: int,
                  rng: np.random.Generator, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
  """(Y_0, Y_L), each (num_nets, width, P), of independent nets on P inputs with input covariance k0.

  Exact in distribution (module docstring): Y_0 = Z_0 A_0, Y_l = Y_(l-1) + s Z_l A_l with A^T A the Gram
  matrix phi(Y_(l-1))^T phi(Y_(l-1)) / n and Z_l i.i.d. standard normal.
  """
  phi = activation(activation_name)
  y0 = _times_factor(rng.standard_normal((num_nets, width, k0.shape[0]), dtype=dtype), psd_factor(k0).astype(dtype))
  y = y0.copy() if depth else y0
  for _ in range(depth):
    p = phi(y)
    gram = np.swapaxes(p, -1, -2) @ p / width
    step = _times_factor(rng.standard_normal(y.shape, dtype=dtype), psd_factor(gram).astype(dtype))
    step *= branch_scale
    y += step  # in place: the same roundings as y + s (Z A)
  return y0, y


def _times_factor(z: np.ndarray, factor: np.ndarray) -> np.ndarray:
  """z @ factor; for one input (1 x 1 factors) the same products as an elementwise multiply, which numpy does in
  a third of the batched matmul's time."""
  if factor.shape[-1] == 1:
    z *= factor
    return z
  return z @ factor


def usable_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not Linux
    return max(1, os.cpu_count() or 1)


def simulate_gram_streams(k0: np.ndarray, width: int, depth: int, branch_scale: float, activation_name: str,
                          num_nets: int, rngs: Sequence[np.random.Generator], dtype: str = "float64",
                          threads: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
  """`simulate_gram` once per generator (one per seed), in `threads` threads (default: the usable cores).

  The same values as calling `simulate_gram` for each generator in turn: each stream is used by one thread only.
  numpy fills random arrays and runs the matmuls and ufuncs without the GIL, so the streams run in parallel.
  """
  def one(rng):
    return simulate_gram(k0, width, depth, branch_scale, activation_name, num_nets, rng, dtype)
  threads = min(threads or usable_cores(), len(rngs))
  if threads <= 1:
    return [one(rng) for rng in rngs]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    return list(pool.map(one, rngs))


def simulate_weights(x: np.ndarray, width: int, depth: int, branch_scale: float, activation_name: str, num_nets: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """The same nets with explicit weight matrices W ~ N(0, 1/fan_in) (O(n^2) per block; for tests)."""
  phi = activation(activation_name)
  d = x.shape[1]
  w_in = rng.standard_normal((num_nets, width, d)) / math.sqrt(d)
  y0 = w_in @ x.T
  y = y0
  for _ in range(depth):
    w = rng.standard_normal((num_nets, width, width)) / math.sqrt(width)
    y = y + branch_scale * (w @ phi(y))
  return y0, y


def second_moments(y: np.ndarray) -> np.ndarray:
  """(nets, P, P) empirical covariances Y^T Y / n."""
  return np.swapaxes(y, -1, -2) @ y / y.shape[-2]


def correlations(k: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
  """(nets, pairs) correlations from (nets, P, P) covariances."""
  i, j = np.array(pairs).T
  return k[:, i, j] / (np.sqrt(k[:, i, i]) * np.sqrt(k[:, j, j]))  # no q1 q2 product: it overflows at s = 1, large L


def excess_kurtosis(y: np.ndarray) -> float:
  """E[y^4] / E[y^2]^2 - 3 over all entries, with the mean known to be 0."""
  y2 = np.square(y, dtype=np.float64)
  return float(np.mean(y2 * y2) / np.mean(y2) ** 2 - 3.0)
