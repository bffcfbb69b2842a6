"""The depth limit of the infinite-width kernel of residual nets with 1/sqrt(depth) branches: an ODE flow.

The net (Hayou & Yang 2023, "Width and Depth Limits Commute in Residual Networks", arXiv 2302.00453):

    Y_0 = W_in x,   Y_l = Y_{l-1} + s W_l phi(Y_{l-1}),  l = 1..L,   W_l ~ N(0, 1/n),  s = branch scale.

At infinite width the covariance K = [[q1, k12], [k12, q2]] of the pre-activations Y_l(x), Y_l(x') of two
inputs follows one step per block (the branch ends in a fresh Gaussian layer, independent of the skip path):

    K_l = K_{l-1} + s^2 E[phi(u) phi(v)],   (u, v) ~ N(0, K_{l-1})               (`finite_depth_kernel`)

With s = L^(-1/2) this is the explicit Euler scheme with step h = 1/L for the flow on t in [0, 1]

    dK/dt = E[phi(u) phi(v)](K)                                                   (`solve_flow`)

so K_L -> K(1) as L -> infinity (Hayou & Yang 2023: the same limit as width and depth go to infinity
in any order). Drifts (closed forms in `harness.theory.signal_propagation.gaussian_moments`):
  ReLU (arc-cosine kernel, Cho & Saul 2009): E[phi phi] = sqrt(q1 q2) / (2 pi) (sin theta + (pi - theta) cos theta),
       cos theta = c = k12 / sqrt(q1 q2). Hence dq/dt = q/2, q(1) = e^(1/2) q(0), and, with dk/dt = q g(c),
       dc/dt = (sqrt(1 - c^2) - c arccos c) / (2 pi)   (the same for any q1, q2: ReLU is homogeneous).
  Erf (arcsine kernel, Williams 1997): E[erf(u) erf(v)] = (2/pi) arcsin(2 k12 / sqrt((1 + 2 q1)(1 + 2 q2))), so
       dq/dt = (2/pi) arcsin(2q / (1 + 2q)) and dk12/dt = (2/pi) arcsin(2 k12 / sqrt((1 + 2 q1)(1 + 2 q2))).

Rate in L: Euler's global error is h e(1) + O(h^2) with e' = J(K) e - K''/2, e(0) = 0, J the Jacobian of the
drift and K'' = J f (Hairer, Norsett & Wanner, "Solving ODEs I", Sec. II.8). So |K_L - K(1)| = |e(1)| / L + O(1/L^2):
slope -1 on log-log axes, with the constant from `euler_error_coefficient`. For ReLU's variance, exactly:
q_L = (1 + 1/(2L))^L q_0 = e^(1/2) q_0 (1 - 1/(8L) + O(1/L^2)).

Other scalings (contrast): s = 1 gives K_L = K_0 + sum of L unscaled increments (ReLU: q_L = (3/2)^L q_0, the
variance explodes and c_L -> 1); s = 1/L gives K_L - K_0 = O(1/L) (the net tends to the identity map).

Two independent checks of `solve_flow` (tests/theory/test_residual_flow.py): the separable 1-D ODEs integrate
by quadrature (`relu_correlation_time`, `erf_variance_time` give t for given end points), and Richardson
extrapolation of the Euler recursion converges to the same K(1).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import integrate

from harness.theory import signal_propagation

ACTIVATIONS = ("relu", "erf")
RTOL = 1e-12   # solve_ivp tolerances of the flow (DOP853, float64)
ATOL = 1e-14
JACOBIAN_STEP = 1e-5  # relative step of the central differences in `euler_error_coefficient`


def _check(activation: str) -> None:
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


@dataclasses.dataclass(frozen=True)
class PairKernel:
  """The 2x2 covariance of two inputs, elementwise over any number of pairs: variances q1, q2, covariance k12."""
  q1: np.ndarray
  q2: np.ndarray
  k12: np.ndarray

  @classmethod
  def of(cls, q1, q2, k12) -> "PairKernel":
    q1, q2, k12 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, k12)))
    return cls(q1.copy(), q2.copy(), k12.copy())

  @classmethod
  def from_correlation(cls, c0, q0=1.0) -> "PairKernel":
    """Two inputs of equal variance q0 and correlation c0."""
    c0 = np.asarray(c0, dtype=np.float64)
    q = np.broadcast_to(np.asarray(q0, dtype=np.float64), c0.shape)
    return cls.of(q, q, c0 * q)

  @property
  def corr(self) -> np.ndarray:
    return self.k12 / (np.sqrt(self.q1) * np.sqrt(self.q2))  # sqrt(q1 q2) overflows once q > 1e154

  def stack(self) -> np.ndarray:
    return np.stack([self.q1, self.q2, self.k12])

  @classmethod
  def unstack(cls, y: np.ndarray) -> "PairKernel":
    return cls(np.asarray(y[0]), np.asarray(y[1]), np.asarray(y[2]))


def drift(activation: str, k: PairKernel) -> PairKernel:
  """E[phi phi] on the diagonal and off it: the right-hand side of the flow (and one block's increment / s^2)."""
  _check(activation)
  moment = lambda a, b, ab: signal_propagation.gaussian_moments(activation, a, b, ab)[0]  # noqa: E731
  return PairKernel(moment(k.q1, k.q1, k.q1), moment(k.q2, k.q2, k.q2), moment(k.q1, k.q2, k.k12))


def residual_block(activation: str, k: PairKernel, branch_scale: float) -> PairKernel:
  """One infinite-width residual block: K + s^2 E[phi phi](K)."""
  d = drift(activation, k)
  s2 = branch_scale ** 2
  return PairKernel(k.q1 + s2 * d.q1, k.q2 + s2 * d.q2, k.k12 + s2 * d.k12)


def finite_depth_kernel(activation: str, k0: PairKernel, depth: int, branch_scale: float | None = None) -> PairKernel:
  """The infinite-width kernel after `depth` residual blocks (default branch scale depth^(-1/2))."""
  if depth < 1:
    raise ValueError(f"depth must be >= 1, got {depth}")
  s = depth ** -0.5 if branch_scale is None else float(branch_scale)
  k = k0
  for _ in range(depth):
    k = residual_block(activation, k, s)
  return k


def _rhs(activation: str, shape: tuple):
  def f(_, y):
    return drift(activation, PairKernel.unstack(y.reshape((3,) + shape))).stack().ravel()
  return f


def solve_flow(activation: str, k0: PairKernel, t_end: float = 1.0, rtol: float = RTOL, atol: float = ATOL,
               method: str = "DOP853") -> PairKernel:
  """K(t_end) of dK/dt = E[phi phi](K), K(0) = k0 (scipy.integrate.solve_ivp, float64)."""
  shape = k0.q1.shape
  solution = integrate.solve_ivp(_rhs(activation, shape), (0.0, float(t_end)), k0.stack().ravel(), method=method,
                                 rtol=rtol, atol=atol)
  if not solution.success:
    raise RuntimeError(f"flow integration failed: {solution.message}")
  return PairKernel.unstack(solution.y[:, -1].reshape((3,) + shape))


def flow_trajectory(activation: str, k0: PairKernel, times, rtol: float = RTOL, atol: float = ATOL) -> list[PairKernel]:
  """K(t) at the given times in [0, t_max] (for plots)."""
  times = np.asarray(times, dtype=np.float64)
  shape = k0.q1.shape
  solution = integrate.solve_ivp(_rhs(activation, shape), (0.0, float(times.max())), k0.stack().ravel(),
                                 method="DOP853", rtol=rtol, atol=atol, t_eval=times)
  if not solution.success:
    raise RuntimeError(f"flow integration failed: {solution.message}")
  return [PairKernel.unstack(solution.y[:, i].reshape((3,) + shape)) for i in range(len(times))]


# -- closed forms and quadratures ------------------------------------------------------------------
def relu_limit_variance(q0, t: float = 1.0):
  """ReLU: dq/dt = q/2, so q(t) = e^(t/2) q0."""
  return np.exp(t / 2.0) * np.asarray(q0, dtype=np.float64)


def relu_finite_depth_variance(q0, depth: int, branch_scale: float | None = None):
  """ReLU at infinite width: q_L = (1 + s^2/2)^L q0 (E[relu(u)^2] = q/2); s = L^(-1/2) by default."""
  s2 = 1.0 / depth if branch_scale is None else float(branch_scale) ** 2
  return (1.0 + s2 / 2.0) ** depth * np.asarray(q0, dtype=np.float64)


def relu_correlation_drift(c):
  """dc/dt = (sqrt(1 - c^2) - c arccos c) / (2 pi) for ReLU (module docstring)."""
  c = np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0)
  return (np.sqrt(1.0 - c * c) - c * np.arccos(c)) / (2.0 * np.pi)


def relu_correlation_time(c0: float, c1: float) -> float:
  """The flow time from correlation c0 to c1 (< 1): t = integral_c0^c1 dc / drift(c) (separable ODE)."""
  value, _ = integrate.quad(lambda c: 1.0 / relu_correlation_drift(c), c0, c1, epsabs=1e-14, epsrel=1e-13, limit=200)
  return float(value)


def erf_variance_drift(q):
  """dq/dt = (2/pi) arcsin(2q / (1 + 2q)) for Erf."""
  q = np.asarray(q, dtype=np.float64)
  return 2.0 / np.pi * np.arcsin(2.0 * q / (1.0 + 2.0 * q))


def erf_variance_time(q0: float, q1: float) -> float:
  """The flow time from variance q0 to q1 for Erf (separable ODE, by quadrature)."""
  value, _ = integrate.quad(lambda q: 1.0 / erf_variance_drift(q), q0, q1, epsabs=1e-14, epsrel=1e-13, limit=200)
  return float(value)


# -- the rate in L ---------------------------------------------------------------------------------
def _jacobian_times(activation: str, y: np.ndarray, v: np.ndarray, shape: tuple) -> np.ndarray:
  """J(y) v by central differences along v (relative step JACOBIAN_STEP)."""
  scale = JACOBIAN_STEP * max(float(np.max(np.abs(y))), 1e-300) / max(float(np.max(np.abs(v))), 1e-300)
  plus = drift(activation, PairKernel.unstack((y + scale * v).reshape((3,) + shape))).stack().ravel()
  minus = drift(activation, PairKernel.unstack((y - scale * v).reshape((3,) + shape))).stack().ravel()
  return (plus - minus) / (2.0 * scale)


@dataclasses.dataclass(frozen=True)
class EulerError:
  """lim_{L -> inf} L (K_L - K(1)) for the kernel entries and the correlation."""
  q1: np.ndarray
  q2: np.ndarray
  k12: np.ndarray
  corr: np.ndarray


def euler_error_coefficient(activation: str, k0: PairKernel) -> EulerError:
  """The leading coefficient e(1) of the finite-depth error K_L - K(1) = e(1)/L + O(1/L^2).

  Integrates y' = f(y), e' = J(y) e - J(y) f(y) / 2 (module docstring); the correlation's coefficient is the
  linearisation of c = k12 / sqrt(q1 q2): e_c = (e_k - k12 (e_q1/q1 + e_q2/q2) / 2) / sqrt(q1 q2).
  """
  shape = k0.q1.shape
  size = 3 * int(np.prod(shape, dtype=int))

  def f(_, z):
    y, e = z[:size], z[size:]
    fy = drift(activation, PairKernel.unstack(y.reshape((3,) + shape))).stack().ravel()
    # J e - J f / 2 = J (e - f / 2): one directional derivative (J is linear); zero direction -> zero.
    direction = e - fy / 2.0
    jv = _jacobian_times(activation, y, direction, shape) if np.any(direction) else np.zeros_like(y)
    return np.concatenate([fy, jv])

  z0 = np.concatenate([k0.stack().ravel(), np.zeros(size)])
  solution = integrate.solve_ivp(f, (0.0, 1.0), z0, method="DOP853", rtol=1e-11, atol=1e-14)
  if not solution.success:
    raise RuntimeError(f"error-coefficient integration failed: {solution.message}")
  k1 = PairKernel.unstack(solution.y[:size, -1].reshape((3,) + shape))
  e = PairKernel.unstack(solution.y[size:, -1].reshape((3,) + shape))
  norm = np.sqrt(k1.q1) * np.sqrt(k1.q2)
  e_corr = (e.k12 - k1.k12 * (e.q1 / k1.q1 + e.q2 / k1.q2) / 2.0) / norm
  return EulerError(e.q1, e.q2, e.k12, e_corr)


def richardson_limit(activation: str, k0: PairKernel, depth: int) -> PairKernel:
  """2 K_{2L} - K_L: the Euler recursion extrapolated to L = infinity (error O(1/L^2)); an independent route."""
  fine = finite_depth_kernel(activation, k0, 2 * depth)
  coarse = finite_depth_kernel(activation, k0, depth)
  return PairKernel(2 * fine.q1 - coarse.q1, 2 * fine.q2 - coarse.q2, 2 * fine.k12 - coarse.k12)


__all__ = ["ACTIVATIONS", "PairKernel", "drift", "residual_block", "finite_depth_kernel", "solve_flow",
           "flow_trajectory", "relu_limit_variance", "relu_finite_depth_variance", "relu_correlation_drift",
           "relu_correlation_time", "erf_variance_drift", "erf_variance_time", "EulerError",
           "euler_error_coefficient", "richardson_limit"]
