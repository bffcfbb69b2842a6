"""Mean-field recursions against closed forms, an independent quadrature route, NT's kernels and asymptotics."""
import math
import pathlib

import numpy as np
import pytest
from scipy import integrate, stats

from harness.theory import signal_propagation as sp

NT_REFERENCE = pathlib.Path(__file__).parents[1] / "nets" / "testdata" / "nt_reference.npz"
SIGMA_B2S = (0.05, 0.18, 0.5, 1.0)


@pytest.mark.parametrize("q1, q2, q12", [(0.5, 0.5, 0.2), (0.3, 1.1, -0.4), (1.0, 1.0, 1.0), (0.6, 0.2, 0.0)])
def test_erf_closed_form_matches_gauss_hermite(q1, q2, q12):
  closed = sp.gaussian_moments("erf", q1, q2, q12, "closed_form")
  quad = sp.gaussian_moments("erf", q1, q2, q12, "quadrature")
  np.testing.assert_allclose(closed, quad, rtol=1e-10, atol=1e-13)


def _relu_moments_by_quad(q1, q2, q12):
  """E[relu(u) relu(v)] and P(u > 0, v > 0) by 1-D quadrature over z1 of the conditional Gaussian of v."""
  c = q12 / math.sqrt(q1 * q2)
  s = math.sqrt(1 - c * c)

  def conditional(z1):
    u = math.sqrt(q1) * z1
    mean, sd = math.sqrt(q2) * c * z1, math.sqrt(q2) * s
    relu_v = mean * stats.norm.cdf(mean / sd) + sd * stats.norm.pdf(mean / sd)  # E[relu(N(mean, sd^2))]
    return max(u, 0.0) * relu_v, float(u > 0) * stats.norm.cdf(mean / sd)

  phi_phi = integrate.quad(lambda z: conditional(z)[0] * stats.norm.pdf(z), 0, np.inf, epsabs=1e-13)[0]
  step_step = integrate.quad(lambda z: conditional(z)[1] * stats.norm.pdf(z), 0, np.inf, epsabs=1e-13)[0]
  return phi_phi, step_step


@pytest.mark.parametrize("q1, q2, q12", [(0.5, 0.5, 0.2), (0.3, 1.1, -0.4), (2.0, 0.7, 0.9)])
def test_relu_arc_cosine_matches_quadrature(q1, q2, q12):
  np.testing.assert_allclose(sp.gaussian_moments("relu", q1, q2, q12), _relu_moments_by_quad(q1, q2, q12),
                             rtol=1e-8)


def test_relu_diagonal_and_known_values():
  phi_phi, step_step = sp.gaussian_moments("relu", 1.7, 1.7, 1.7)
  assert phi_phi == pytest.approx(1.7 / 2, rel=1e-14)  # E[relu(u)^2] = q / 2
  assert step_step == pytest.approx(0.5, rel=1e-14)
  field = sp.MeanField("relu", 1.5, 0.1)
  assert field.q_star == pytest.approx(0.1 / (1 - 0.75))
  assert field.chi_1 == 0.75 and field.phase == "ordered"
  assert sp.critical_sigma_w2("relu", 0.0) == 2.0
  with pytest.raises(ValueError):
    sp.critical_sigma_w2("relu", 0.1)


@pytest.mark.parametrize("sigma_b2", SIGMA_B2S)
def test_critical_line_two_routes_agree_and_chi_1_is_one(sigma_b2):
  closed = sp.critical_sigma_w2("erf", sigma_b2, "closed_form")
  quad = sp.critical_sigma_w2("erf", sigma_b2, "quadrature")
  assert quad == pytest.approx(closed, rel=1e-9)
  for method in sp.METHODS:
    field = sp.MeanField("erf", closed, sigma_b2, method)
    assert field.chi_1 == pytest.approx(1.0, abs=1e-12 if method == "closed_form" else 1e-9)
    assert field.q_map(field.q_star) == pytest.approx(field.q_star, rel=1e-13)
    assert field.phase == "critical" and field.xi_1 == math.inf


def test_critical_line_limits():
  # sigma_b2 = 0: q* = 0 and chi_1 = sigma_w2 * erf'(0)^2 = 4 sigma_w2 / pi.
  assert sp.critical_sigma_w2("erf", 0.0) == pytest.approx(math.pi / 4)
  # q* -> 0 as sigma_b2 -> 0 (slowly: the fixed-point equation is of third order in q), so sigma_w2 -> pi / 4.
  approach = [sp.critical_sigma_w2("erf", s) - math.pi / 4 for s in (1e-4, 1e-8, 1e-12)]
  assert np.all(np.diff(approach) < 0) and 0 < approach[-1] < 1e-3 * math.pi / 4
  line = sp.critical_line("erf", SIGMA_B2S)
  assert np.all(np.diff(line) > 0)  # more bias variance needs more weight variance to reach chaos


@pytest.mark.parametrize("sigma_w2, phase", [(1.25, "ordered"), (1.5, "chaotic"), (3.0, "chaotic")])
def test_fixed_points_slopes_and_depth_scales(sigma_w2, phase):
  field = sp.MeanField("erf", sigma_w2, 0.05)
  assert field.phase == phase
  assert field.q_map(field.q_star) == pytest.approx(field.q_star, rel=1e-13)
  # chi(c) is the C-map's derivative (Price's theorem): compare with a central difference.
  for c in (0.3, 0.8):
    h = 1e-5
    slope = (field.c_map(c + h) - field.c_map(c - h)) / (2 * h)
    assert field.chi(c) == pytest.approx(slope, rel=1e-8)
  if phase == "ordered":
    assert field.c_star == 1.0
    assert field.xi_1 == pytest.approx(-1 / math.log(field.chi_1))
    with pytest.raises(ValueError):
      field.xi_star
  else:
    assert 0 < field.c_star < 1
    assert field.c_map(field.c_star) == pytest.approx(field.c_star, abs=1e-13)
    assert field.chi_c_star < 1  # c* is stable
    assert field.xi_star == pytest.approx(-1 / (math.log(field.chi_c_star) - math.log(field.chi_1)))
    quad = sp.MeanField("erf", sigma_w2, 0.05, "quadrature")
    assert quad.xi_star == pytest.approx(field.xi_star, rel=1e-9)


@pytest.mark.parametrize("case, activation, w_std, b_std", [("fc_erf", "erf", 1.5, 0.05),
                                                            ("fc_relu", "relu", math.sqrt(2), 0.1)])
def test_fcn_kernels_match_neural_tangents(case, activation, w_std, b_std):
  """NT 0.6.5 stax.serial([Dense, act] * 3, Dense) kernels (tests/nets/testdata, computed by NT itself)."""
  ref = np.load(NT_REFERENCE)
  x1, x2 = ref[f"{case}/x1"], ref[f"{case}/x2"]
  (kernels,) = sp.fcn_kernels(np.concatenate([x1, x2]), [3], activation, w_std ** 2, b_std ** 2)
  n = len(x1)
  for name in ("nngp", "ntk"):
    got = getattr(kernels, name)
    np.testing.assert_allclose(got[:n, :n], ref[f"{case}/{name}_11"], rtol=1e-12)
    np.testing.assert_allclose(got[:n, n:], ref[f"{case}/{name}_12"], rtol=1e-12)


def test_critical_ntk_ratio_tends_to_one_third_for_erf_and_one_quarter_for_relu():
  depths = [100, 1000, 10000]
  erf = sp.two_point_ntk_ratio("erf", sp.critical_sigma_w2("erf", 0.05), 0.05, c0=0.3, depths=depths)
  relu = sp.two_point_ntk_ratio("relu", 2.0, 0.0, c0=0.3, depths=depths, q0=1.0)
  for ratios, limit in ((erf, 1 / 3), (relu, 1 / 4)):
    errors = np.abs(ratios - limit)
    assert np.all(np.diff(errors) < 0) and errors[-1] < 1e-3


def test_ntk_ratio_off_criticality():
  ordered = sp.two_point_ntk_ratio("erf", 1.25, 0.05, c0=0.3, depths=[1000])
  chaotic = sp.two_point_ntk_ratio("erf", 1.5, 0.05, c0=0.3, depths=[1000])
  assert ordered[0] == pytest.approx(1.0, abs=1e-6)  # K and Theta become constant matrices
  assert chaotic[0] < 1e-10  # the diagonal grows like chi_1^l, the off-diagonal stays bounded


def test_condition_number_at_criticality_tends_to_one_plus_n_over_two():
  """Theta ~ l q* (2/3 I + 1/3 1 1^T) at criticality (Erf), so kappa -> (2/3 + n/3) / (2/3) = 1 + n/2."""
  x = np.random.default_rng(0).normal(size=(8, 20))
  (kernels,) = sp.fcn_kernels(x, [4000], "erf", sp.critical_sigma_w2("erf", 0.05), 0.05)
  assert sp.condition_number(kernels.ntk) == pytest.approx(1 + 8 / 2, rel=0.02)
  assert sp.condition_number(np.diag([1.0, 4.0])) == pytest.approx(4.0)
  assert sp.condition_number(np.ones((2, 2))) == math.inf


def test_decay_rate_of_an_exponential():
  depths = np.arange(10, 100, 10)
  assert sp.decay_rate(depths, 3.0 * np.exp(-0.3 * depths)) == pytest.approx(0.3, rel=1e-12)


def test_depth_profile_of_hand_made_kernels():
  n = 4
  ntk = np.zeros((6, 6))
  ntk[:n, :n] = np.diag([1.0, 2.0, 3.0, 4.0])
  ntk[n:, :n] = np.eye(2, n)  # test point i looks like train point i
  y = np.eye(4)[:, :2]
  (point,) = sp.ntk_depth_profile([sp.Kernels(7, ntk, ntk)], n, y)
  assert point.depth == 7 and point.condition_number == pytest.approx(4.0) and point.offdiag_ratio == 0.0
  centered = y - y.mean(0)
  expected = ntk[n:, :n] @ np.linalg.solve(ntk[:n, :n], centered)
  assert point.mean_predictor_rms == pytest.approx(np.sqrt(np.mean(expected ** 2)))


def test_chaotic_mean_predictor_decays_at_the_rate_one_over_xi_star():
  """Centered targets cancel the constant off-diagonal part, leaving the data-dependent part ~ (chi_c*/chi_1)^l."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(12, 30))
  x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(30)
  y = np.eye(3)[rng.integers(0, 3, size=8)]
  depths = [200, 250, 300, 350, 400]
  points = sp.ntk_depth_profile(sp.fcn_kernels(x, depths, "erf", 1.5, 0.05), 8, y)
  rate = sp.decay_rate(depths, [p.mean_predictor_rms for p in points])
  field = sp.MeanField("erf", 1.5, 0.05)
  # mean ~ l exp(-l / xi_*): the l prefactor lowers the fitted rate by about 1/300.
  assert rate == pytest.approx(1 / field.xi_star - 1 / 300, rel=0.03)
  assert points[-1].condition_number < 1 + 1e-4  # off-diagonal / diagonal ~ chi_1^-l = 1.2e-6 at l = 400
