"""The depth-limit ODE flow of residual nets against closed forms, quadratures, Richardson and Euler's error expansion.

Derivations: harness/theory/residual_flow.py (module docstring). K_L is the infinite-width recursion
K_l = K_(l-1) + s^2 E[phi phi](K_(l-1)), s = L^(-1/2): Euler's method with step 1/L for dK/dt = E[phi phi](K).
"""
import math

import numpy as np
import pytest

from harness.theory import residual_flow as rf

ACTIVATIONS = ("relu", "erf")
# Pairs with unequal variances and no zero covariance (Erf's k12 = 0 stays 0, leaving no relative error to test).
Q1 = np.array([0.7, 1.0, 2.3, 1.0, 0.4])
Q2 = np.array([1.9, 1.0, 0.5, 1.0, 0.4])
C0 = np.array([-0.5, 0.3, 0.5, 0.9, 0.99])
K0 = rf.PairKernel.of(Q1, Q2, C0 * np.sqrt(Q1 * Q2))


def _entries(k: rf.PairKernel) -> np.ndarray:
  """q1, q2, k12 and the correlation, stacked (4, pairs)."""
  return np.concatenate([k.stack(), k.corr[None]])


def test_relu_variance_limit_is_e_to_the_half():
  """dq/dt = E[relu(u)^2] = q/2, so q(1) = e^(1/2) q(0) for each input separately.

  1e-10 relative: the solver's rtol is 1e-12 per step (DOP853, ~10 steps on this smooth linear ODE); measured 7e-15.
  """
  k1 = rf.solve_flow("relu", K0)
  np.testing.assert_allclose(k1.q1, math.exp(0.5) * Q1, rtol=1e-10, atol=0)
  np.testing.assert_allclose(k1.q2, math.exp(0.5) * Q2, rtol=1e-10, atol=0)
  np.testing.assert_allclose(k1.q1, rf.relu_limit_variance(Q1), rtol=1e-10, atol=0)


def test_relu_correlation_end_point_matches_the_separable_quadrature():
  """dc/dt = (sqrt(1 - c^2) - c arccos c) / (2 pi) for any q1, q2 (ReLU is homogeneous): the time from c0 to the
  flow's c(1), by quadrature of dc / drift(c), is 1.

  1e-9: c(1) carries the solver's ~1e-12 (the finer-tolerance test below sees < 2e-14), amplified by
  dt/dc = 1/drift(c(1)) <= 1/1.4e-4 at c0 = 0.99 (drift ~ (2 eps)^(3/2) / (6 pi) near c = 1), plus the
  quadrature's epsrel 1e-13; measured <= 2e-12.
  """
  k1 = rf.solve_flow("relu", K0)
  assert np.all(np.diff(k1.corr - C0) < 0) and np.all(k1.corr > C0)  # drift > 0, smaller near c = 1
  for c0, c1 in zip(C0, k1.corr):
    assert rf.relu_correlation_time(c0, c1) == pytest.approx(1.0, abs=1e-9), (c0, c1)
  # and the clock runs: half the flow time reaches a point the quadrature puts at t = 1/2
  half = rf.solve_flow("relu", K0, t_end=0.5)
  for c0, c_half in zip(C0, half.corr):
    assert rf.relu_correlation_time(c0, c_half) == pytest.approx(0.5, abs=1e-9)


def test_erf_variance_end_point_matches_the_separable_quadrature():
  """dq/dt = (2/pi) arcsin(2q / (1 + 2q)) for Erf: the time from q(0) to the flow's q(1), by quadrature, is 1.

  1e-10: 1/drift <= 3.5 here (q >= 0.4), times the solver's ~1e-12; measured 3e-14.
  """
  k1 = rf.solve_flow("erf", K0)
  for q0, q1 in list(zip(Q1, k1.q1)) + list(zip(Q2, k1.q2)):
    assert rf.erf_variance_time(q0, q1) == pytest.approx(1.0, abs=1e-10), (q0, q1)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_flow_agrees_with_a_much_finer_solver_tolerance(activation):
  """rtol 1e-13 / atol 1e-16 (DOP853) vs the defaults 1e-12 / 1e-14.

  1e-11 relative: ten times the default rtol (the global error of ~10-20 steps at local rtol 1e-12); measured 2e-14.
  """
  k1 = rf.solve_flow(activation, K0)
  fine = rf.solve_flow(activation, K0, rtol=1e-13, atol=1e-16)
  np.testing.assert_allclose(_entries(k1), _entries(fine), rtol=1e-11, atol=0)
  # and with an unrelated implicit method (Radau), to its own looser tolerance
  radau = rf.solve_flow(activation, K0, rtol=1e-10, atol=1e-13, method="Radau")
  np.testing.assert_allclose(_entries(k1), _entries(radau), rtol=1e-8, atol=0)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_flow_agrees_with_richardson_extrapolation_of_the_euler_recursion(activation):
  """2 K_2L - K_L = K(1) + O(1/L^2): an independent route to the limit (no ODE solver).

  At L = 1024 the remaining O(1/L^2) term is measured at <= 7.2e-8 relative (ReLU; the correlation of c0 = -0.5,
  which is small) and <= 5e-9 (Erf); 3e-7 leaves a factor 4. The error must also fall by 4 from L = 512 to 1024
  (+-5%: the O(1/L^3) term moves the ratio by ~1/L, measured 3.994-4.006), which a wrong limit (an offset that
  does not shrink) or first-order convergence (ratio 2) would not.
  """
  k1 = _entries(rf.solve_flow(activation, K0))
  errors = {}
  for depth in (512, 1024):
    extrapolated = _entries(rf.richardson_limit(activation, K0, depth))
    errors[depth] = np.abs(extrapolated / k1 - 1.0)
  assert np.max(errors[1024]) < 3e-7
  np.testing.assert_allclose(errors[512] / errors[1024], 4.0, rtol=0.05)


def test_relu_variance_richardson_error_is_the_closed_form():
  """q_L / q(1) = exp(L log(1 + 1/(2L)) - 1/2) = 1 - 1/(8L) + (19/384) / L^2 + O(1/L^3), so
  (2 q_2L - q_L) / q(1) = 1 - (19/768) / L^2 + O(1/L^3). At L = 1024: -2.359e-8; the O(1/L^3) term is ~1e-3 of it,
  so 1% relative."""
  depth = 1024
  extrapolated = rf.richardson_limit("relu", K0, depth)
  relative = extrapolated.q1 / rf.relu_limit_variance(Q1) - 1.0
  np.testing.assert_allclose(relative, -19 / 768 / depth ** 2, rtol=0.01)


@pytest.mark.parametrize("depth", [1, 7, 64, 1000])
@pytest.mark.parametrize("branch_scale", [None, 1.0, 0.3])
def test_relu_finite_depth_variance_is_the_closed_form(depth, branch_scale):
  """E[relu(u)^2] = q/2, so each block multiplies q by 1 + s^2/2: q_L = (1 + s^2/2)^L q_0.

  1e-12 relative: L roundings of 1.1e-16 each (1.1e-13 at L = 1000), computed two different ways.
  """
  k = rf.finite_depth_kernel("relu", K0, depth, branch_scale)
  np.testing.assert_allclose(k.q1, rf.relu_finite_depth_variance(Q1, depth, branch_scale), rtol=1e-12, atol=0)
  np.testing.assert_allclose(k.q2, rf.relu_finite_depth_variance(Q2, depth, branch_scale), rtol=1e-12, atol=0)
  if branch_scale == 1.0 and depth == 64:
    np.testing.assert_allclose(k.q1, 1.5 ** 64 * Q1, rtol=1e-12)  # the explosion at s = 1


def test_finite_depth_kernel_is_one_block_at_a_time_and_tends_to_the_flow():
  """One block is K + s^2 drift(K); and K_L -> K(1) monotonically in L at the rate 1/L (Euler)."""
  one = rf.finite_depth_kernel("erf", K0, 1, 0.7)
  drift = rf.drift("erf", K0)
  np.testing.assert_allclose(one.stack(), K0.stack() + 0.49 * drift.stack(), rtol=1e-15)
  k1 = rf.solve_flow("erf", K0).corr
  gaps = [np.max(np.abs(rf.finite_depth_kernel("erf", K0, depth).corr - k1)) for depth in (16, 64, 256)]
  assert gaps[0] > gaps[1] > gaps[2]
  np.testing.assert_allclose(np.array(gaps[:-1]) / gaps[1:], 4.0, rtol=0.05)  # x4 in L -> /4 in error


def test_relu_variance_error_coefficient_is_minus_one_eighth():
  """q_L = e^(1/2) q_0 (1 - 1/(8L) + ...), so e_q = -e^(1/2) q_0 / 8 exactly.

  1e-8 relative: the drift q/2 is linear, so the central differences of the Jacobian are exact up to rounding
  (~eps / JACOBIAN_STEP = 2e-11), plus the error ODE's rtol 1e-11; measured 5e-11.
  """
  e = rf.euler_error_coefficient("relu", K0)
  np.testing.assert_allclose(e.q1, -math.exp(0.5) * Q1 / 8, rtol=1e-8)
  np.testing.assert_allclose(e.q2, -math.exp(0.5) * Q2 / 8, rtol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_euler_error_coefficient_predicts_the_finite_depth_error(activation):
  """L (K_L - K(1)) = e + e_2 / L + O(1/L^2) (Hairer, Norsett & Wanner, Sec. II.8): at L = 512 and 1024 the
  relative deviation from e is |e_2 / e| / L.

  Tolerance 1/L: |e_2 / e| is 19/48 = 0.40 for the ReLU variance (exact, from the expansion of q_L above) and at
  most 0.63 over these pairs and entries (measured: 0.51 ReLU, 0.63 Erf), so 1/L leaves a factor 1.6. The
  deviation must also halve from L = 512 to 1024 (+-10% for the next order; measured 1.998-2.002), so it is the
  next term of the expansion, not a bias in e (a 1e-3 error in e would break the halving). K(1)'s error (~1e-12,
  times L) is ~1e-5 of the deviation.
  """
  k1 = _entries(rf.solve_flow(activation, K0))
  e = rf.euler_error_coefficient(activation, K0)
  coefficient = np.stack([e.q1, e.q2, e.k12, e.corr])
  assert np.all(np.abs(coefficient) > 1e-5)  # no zero entries: the relative test is meaningful everywhere
  deviations = {}
  for depth in (512, 1024):
    scaled = depth * (_entries(rf.finite_depth_kernel(activation, K0, depth)) - k1)
    deviations[depth] = np.abs(scaled / coefficient - 1.0)
    assert np.max(deviations[depth]) < 1.0 / depth, (depth, np.max(deviations[depth]))
  np.testing.assert_allclose(deviations[512] / deviations[1024], 2.0, rtol=0.1)


def test_flow_trajectory_matches_solve_flow():
  """The dense trajectory at t = 1 is solve_flow's end point; ReLU's variance is e^(t/2) q0 along the way."""
  times = [0.0, 0.25, 0.5, 1.0]
  trajectory = rf.flow_trajectory("relu", K0, times)
  np.testing.assert_allclose(trajectory[0].stack(), K0.stack(), rtol=1e-15)
  np.testing.assert_allclose(_entries(trajectory[-1]), _entries(rf.solve_flow("relu", K0)), rtol=1e-11)
  for t, k in zip(times, trajectory):
    np.testing.assert_allclose(k.q1, rf.relu_limit_variance(Q1, t), rtol=1e-10)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="activation"):
    rf.drift("tanh", K0)
  with pytest.raises(ValueError, match="activation"):
    rf.solve_flow("tanh", K0)
  with pytest.raises(ValueError, match="activation"):
    rf.finite_depth_kernel("tanh", K0, 4)
  with pytest.raises(ValueError, match="activation"):
    rf.euler_error_coefficient("tanh", K0)
  with pytest.raises(ValueError, match="activation"):
    rf.richardson_limit("gelu", K0, 4)
  with pytest.raises(ValueError, match="depth"):
    rf.finite_depth_kernel("relu", K0, 0)
