"""Sharpness: the largest eigenvalue of a Keras model's loss Hessian on a fixed batch, by power iteration.

For gradient descent with per-parameter learning rates lr * m_i (muP's multipliers, harness/online.py), the update
near a minimum is w <- w - lr P H (w - w*), P = diag(m_i); it is stable while lr * lambda_max(P H) < 2, and
lambda_max(P H) = lambda_max(P^1/2 H P^1/2) (similar matrices). So the sharpness compared with 2/lr is that of the
preconditioned Hessian P^1/2 H P^1/2 (P = I without multipliers: the plain Hessian). Cohen, Kaur, Li, Kolter &
Talwalkar 2021 ("Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability", arXiv 2103.00065)
measure it the same way, by power iteration on Hessian-vector products; `edge_of_stability_ratio` is
lr * lambda / 2 (1: the edge of stability).

Power iteration converges to the eigenvalue of largest magnitude: the result is that Rayleigh quotient, which is
lambda_max whenever the top eigenvalue dominates the most negative one (the case for a loss near or above a
minimum; a negative result says otherwise). Hessian-vector products: harness.nets.backends'
`hessian_vector_product` (exact, by automatic differentiation), in the model's dtype.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import keras
import numpy as np

from harness import online, seeding
from harness.nets import backends

ITERATIONS = 30      # at most; the iteration stops earlier when the estimate settles
RTOL = 1e-3          # ... to this relative change between two iterations


@dataclasses.dataclass(frozen=True)
class Sharpness:
  eigenvalue: float    # Rayleigh quotient of the preconditioned Hessian at the last iterate
  iterations: int
  converged: bool      # relative change below RTOL


class HessianProbe:
  """The preconditioned loss Hessian of `model` on a fixed batch (x, y), its Hessian-vector product compiled once:
  `top_eigenvalue()` reads the model's current weights, so one probe serves a whole training run
  (harness.online.train_online's on_log). jit_compile: TensorFlow's XLA switch, as in harness.online."""

  def __init__(self, model: keras.Model, x: np.ndarray, y: np.ndarray, loss: str = "xent",
               lr_multipliers: Mapping[str, float] | None = None, jit_compile: bool = True):
    backend = backends.current()
    self._model, self._backend = model, backend
    self._roots = [np.sqrt(m) for m in online.check_multipliers(model, lr_multipliers)]
    self._dtype = model.trainable_variables[0].dtype

    def loss_fn(p, nt, xb, yb):
      f, _ = model.stateless_call(p, nt, xb, training=False)
      return online.batch_loss(loss, f, yb)

    self._hvp = backend.hessian_vector_product(loss_fn, jit_compile)
    y = np.asarray(y)
    self._x = backend.to_tensor(np.asarray(x), self._dtype)
    self._y = backend.to_tensor(y, "int32" if loss == "xent" and y.ndim == 1 else self._dtype)

  def top_eigenvalue(self, iterations: int = ITERATIONS, rtol: float = RTOL, seed: int = 0) -> Sharpness:
    """lambda_max of P^1/2 H P^1/2 at the current weights (module docstring); start vector drawn with `seed`."""
    backend = self._backend
    params = [keras.ops.convert_to_tensor(v) for v in self._model.trainable_variables]
    non_trainable = [keras.ops.convert_to_tensor(v) for v in self._model.non_trainable_variables]
    rng = seeding.rng(seed)
    v = _normalized([rng.standard_normal(tuple(p.shape)) for p in params])
    estimate, previous, done = 0.0, None, 0
    for done in range(1, iterations + 1):
      scaled = [backend.to_tensor(r * vi, self._dtype) for r, vi in zip(self._roots, v)]
      product = [r * np.asarray(backend.to_numpy(h), np.float64)
                 for r, h in zip(self._roots, self._hvp(params, scaled, non_trainable, self._x, self._y))]
      estimate = float(sum(np.vdot(a, b) for a, b in zip(v, product)))
      v = _normalized(product)
      if previous is not None and abs(estimate - previous) <= rtol * abs(estimate):
        return Sharpness(estimate, done, True)
      previous = estimate
    return Sharpness(estimate, done, False)


def top_hessian_eigenvalue(model: keras.Model, x: np.ndarray, y: np.ndarray, loss: str = "xent",
                           lr_multipliers: Mapping[str, float] | None = None, iterations: int = ITERATIONS,
                           rtol: float = RTOL, seed: int = 0) -> Sharpness:
  """lambda_max of P^1/2 H P^1/2, H the Hessian of `loss` (harness.online.batch_loss) of `model` on (x, y) in its
  trainable variables, P the learning-rate multipliers (module docstring); the start vector is drawn with `seed`."""
  return HessianProbe(model, x, y, loss, lr_multipliers).top_eigenvalue(iterations, rtol, seed)


def edge_of_stability_ratio(eigenvalue: float, learning_rate: float) -> float:
  """lr * lambda / 2: 1 at the edge of stability (gradient descent on a quadratic diverges above it)."""
  return learning_rate * eigenvalue / 2.0


def _normalized(vectors: list[np.ndarray]) -> list[np.ndarray]:
  norm = float(np.sqrt(sum(np.vdot(a, a) for a in vectors)))
  if not norm > 0:
    raise ValueError("the Hessian-vector product vanished: the loss is flat in every direction")
  return [a / norm for a in vectors]


__all__ = ["HessianProbe", "Sharpness", "edge_of_stability_ratio", "top_hessian_eigenvalue"]
