"""benchmarks/commutativity.py: the Gram simulator vs explicit weights and Keras, helpers, claim checks, one tiny run.

Derivations: the module docstring of benchmarks/commutativity.py (Gram recursion: Li, Nica & Roy 2022; the s = 1
collapse rate of ReLU: part 5) and harness/theory/residual_flow.py (the flow).
"""
import math
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from benchmarks.commutativity import claims as cclaims
from benchmarks.commutativity import config as cconfig
from benchmarks.commutativity import families as F
from benchmarks.commutativity import inputs as cinputs
from benchmarks.commutativity import nets as cnets
from benchmarks.commutativity.experiment import EXPERIMENT
from harness import residual_gram as gram
from harness.families import Table
from harness import claims as claims_lib
from harness import preflight, precision, registry, stats
from tests.benchmarks import helpers
from harness.metrics import Metric, metrics_from_json
from harness.theory import residual_flow as rf

EXACT_MIRROR = helpers.EXACT_MIRROR

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CORRELATIONS = (0.0, 0.5, 0.9)
PAIRS = [(0, i) for i in range(1, len(CORRELATIONS) + 1)]
FAMILY_ALPHA = 0.01   # Bonferroni family level of the distribution tests below
NETS = 3000           # per sampler: the KS test then detects a shift of ~0.1 sd of c_L (see the negative control)


def _samples(y: np.ndarray) -> np.ndarray:
  """(nets, pairs + 1): c_L of each pair and q_L of the anchor."""
  k = gram.second_moments(y)
  return np.concatenate([gram.correlations(k, PAIRS), k[:, :1, 0]], axis=1)


def _ks_pvalues(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.array([scipy_stats.ks_2samp(a[:, i], b[:, i]).pvalue for i in range(a.shape[1])])


# ------------------------------------------------------------------------------------------------------
# (a) the Gram recursion is the net in distribution
# ------------------------------------------------------------------------------------------------------
CASES = [("relu", 8, 3), ("erf", 8, 3), ("relu", 16, 8)]


def test_gram_simulator_matches_explicit_weights_in_distribution():
  """Rows of W phi(Y) are i.i.d. N(0, phi^T phi / n) given Y (fresh Gaussian W used once), so simulate_gram and
  simulate_weights draw (Y_0, Y_L) from the same law. Two-sample KS on c_L per pair and q_L, 12 tests, each at
  FAMILY_ALPHA / 12 (Bonferroni; fixed seeds, so the outcome is reproducible)."""
  x = cinputs.synthetic_points(CORRELATIONS, 5)
  k0 = x @ x.T / x.shape[1]
  pvalues = []
  for index, (act, n, depth) in enumerate(CASES):
    s = depth ** -0.5
    _, y_gram = gram.simulate_gram(k0, n, depth, s, act, NETS, np.random.default_rng([index, 1]))
    _, y_weights = gram.simulate_weights(x, n, depth, s, act, NETS, np.random.default_rng([index, 2]))
    pvalues.append(_ks_pvalues(_samples(y_gram), _samples(y_weights)))
  pvalues = np.concatenate(pvalues)
  assert np.min(pvalues) > FAMILY_ALPHA / pvalues.size, pvalues


def test_the_distribution_test_has_power():
  """Negative control: a 30% larger branch scale (mean q_L 2.1 instead of 1.59 at n = 8, L = 3, where q_L's own
  sd is ~50%) is rejected far below the Bonferroni level used above (measured p = 1e-19 for q_L, 3e-7 for c_L at
  c0 = 0)."""
  x = cinputs.synthetic_points(CORRELATIONS, 5)
  k0 = x @ x.T / x.shape[1]
  _, y_gram = gram.simulate_gram(k0, 8, 3, 1.3 * 3 ** -0.5, "relu", NETS, np.random.default_rng([9, 1]))
  _, y_weights = gram.simulate_weights(x, 8, 3, 3 ** -0.5, "relu", NETS, np.random.default_rng([9, 2]))
  pvalues = _ks_pvalues(_samples(y_gram), _samples(y_weights))
  assert pvalues[-1] < 1e-10 and pvalues[0] < FAMILY_ALPHA / 12 / 100


def test_gram_simulator_first_layer_and_moments():
  """Y_0 = Z A_0 has covariance k0 exactly in expectation: the mean of Y_0^T Y_0 / n over nets is k0 within 5 s.e."""
  x = cinputs.synthetic_points(CORRELATIONS, 5)
  k0 = x @ x.T / x.shape[1]
  y0, y = gram.simulate_gram(k0, 16, 2, 0.5, "relu", 4000, np.random.default_rng(0))
  assert y0.shape == y.shape == (4000, 16, len(CORRELATIONS) + 1)
  k = gram.second_moments(y0)
  se = k.std(axis=0) / math.sqrt(len(k))
  assert np.all(np.abs(k.mean(axis=0) - k0) <= 5 * se + 1e-15)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_gram_streams_in_threads_equal_the_sequential_simulations(act):
  """simulate_gram_streams gives each seed's stream bit for bit what simulate_gram gives it alone."""
  x = cinputs.synthetic_points(CORRELATIONS, 5)
  k0 = x @ x.T / x.shape[1]
  streams = gram.simulate_gram_streams(k0, 16, 5, 0.5, act, 7, [np.random.default_rng([s, 3]) for s in range(5)],
                                       threads=3)
  for seed, (y0, y) in enumerate(streams):
    y0_alone, y_alone = gram.simulate_gram(k0, 16, 5, 0.5, act, 7, np.random.default_rng([seed, 3]))
    np.testing.assert_array_equal(y0, y0_alone)
    np.testing.assert_array_equal(y, y_alone)


def test_keras_net_is_the_residual_recursion():
  """The Keras net of residual_spec computes Y_0 = x W_0 / sqrt(d), Y_l = Y_(l-1) + s relu(Y_(l-1)) W_l / sqrt(n)
  with W ~ N(0, 1) (NTK parameterisation, so W_in ~ N(0, 1/d) as in the paper), in float64: equal to a numpy
  forward pass with its own weights to 1e-12 (a few float64 roundings per block).

  L = 4, so s = 1/2 exactly: under TensorFlow keras.layers.Rescaling (the library's branch scale) casts the Python
  float through a float32 tensor, so s = 3^(-1/2) would be off by 1e-7 relative (harmless for the KS check).
  """
  import keras  # pylint: disable=import-outside-toplevel
  n, depth, s = 12, 4, 0.5
  x = cinputs.synthetic_points(CORRELATIONS, 5)
  floatx = keras.config.floatx()
  net = cnets.KerasResidualNet("relu", n, depth, s, x.shape[1], "float64")
  assert keras.config.floatx() == floatx  # restored after the build
  y_keras = net.sample(x, [7])[0].T   # (P, n)
  kernels = [w for layer in net.model.layers if layer.name.startswith("dense_") for w in layer.get_weights()[:1]]
  assert len(kernels) == depth + 2 and kernels[0].dtype == np.float64
  y = x @ kernels[0] / math.sqrt(x.shape[1])
  for w in kernels[1:-1]:
    y = y + s * np.maximum(y, 0.0) @ w / math.sqrt(n)
  np.testing.assert_allclose(y_keras, y, rtol=1e-12, atol=1e-12)
  again = net.sample(x, [7, 8])
  np.testing.assert_array_equal(again[0], y_keras.T)          # reinitialize(seed) is reproducible
  assert not np.allclose(again[1], again[0])


# ------------------------------------------------------------------------------------------------------
# (b)-(d) helpers
# ------------------------------------------------------------------------------------------------------
def test_synthetic_points_have_the_requested_correlations():
  correlations = (0.0, 0.25, -0.5, 0.9, 1.0)
  x = cinputs.synthetic_points(correlations, 8)
  assert x.shape == (6, 8)
  np.testing.assert_allclose(np.sum(x * x, axis=1) / 8, 1.0, rtol=1e-14)   # x.x/d = 1
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  np.testing.assert_allclose(unit[1:] @ unit[0], correlations, atol=1e-15)
  np.testing.assert_allclose(unit[1:4] @ unit[1:4].T - np.diag(np.diag(unit[1:4] @ unit[1:4].T)),  # partners
                             np.outer(correlations[:3], correlations[:3]) - np.diag(np.square(correlations[:3])),
                             atol=1e-15)
  with pytest.raises(ValueError, match="dimension"):
    cinputs.synthetic_points(correlations, 5)


def test_standardize_images():
  images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
  x = cinputs.standardize_images(images)
  assert x.shape == (5, 48) and x.dtype == np.float64
  np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-14)
  np.testing.assert_allclose(np.mean(x * x, axis=1), 1.0, rtol=1e-14)
  # it only removes each image's offset and scale: an affine map of the pixel values changes nothing
  brighter = (images.astype(np.int64) // 2 + 60).astype(np.uint8)
  np.testing.assert_allclose(cinputs.standardize_images(brighter), cinputs.standardize_images(images // 2), atol=1e-12)
  np.testing.assert_allclose(x[0], cinputs.standardize_images(images[:1])[0], rtol=1e-15)   # row by row


@pytest.mark.parametrize("kind", ["definite", "singular", "dead_unit_batch"])
def test_psd_factor(kind):
  """A^T A = K; Cholesky fails on singular K (duplicated inputs, a ReLU unit dead on all inputs) and eigh takes
  over. 1e-12: a few roundings of O(1) entries."""
  rng = np.random.default_rng(1)
  if kind == "definite":
    g = rng.normal(size=(5, 5))
    k = g @ g.T + 0.1 * np.eye(5)
  elif kind == "singular":
    g = rng.normal(size=(5, 2))
    k = g @ g.T                                    # rank 2
    with pytest.raises(np.linalg.LinAlgError):
      np.linalg.cholesky(k)
  else:
    p = np.maximum(rng.normal(size=(3, 7, 4)), 0.0)
    p[1, :, 2] = 0.0                               # input 2 kills every unit of net 1: a zero row and column
    k = np.swapaxes(p, -1, -2) @ p / 7
  a = gram.psd_factor(k)
  assert a.shape == k.shape
  np.testing.assert_allclose(np.swapaxes(a, -1, -2) @ a, k, rtol=0, atol=1e-12 * np.max(np.abs(k)))


def test_excess_kurtosis():
  """0 for a Gaussian; 3 Var(V) / E[V]^2 for the scale mixture y = sqrt(V) z; -2 for +-1."""
  rng = np.random.default_rng(2)
  samples = 1_000_000
  # Gaussian: sampling sd sqrt(24 / samples) = 0.0049, so 5 sd = 0.025
  assert abs(gram.excess_kurtosis(rng.standard_normal((1000, samples // 1000)))) < 0.025
  # V in {0.5, 1.5}, each 1/2: E[V] = 1, Var(V) = 1/4, so 3/4; sd sqrt(Var(y^4)) / sqrt(samples) ~ 0.016 (E[y^8] =
  # 105 E[V^4] = 269), so 0.08 is 5 sd
  v = rng.choice([0.5, 1.5], size=samples)
  assert gram.excess_kurtosis(np.sqrt(v) * rng.standard_normal(samples)) == pytest.approx(0.75, abs=0.08)
  assert gram.excess_kurtosis(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(-2.0, abs=1e-15)
  # the mean is known to be 0, not estimated: a constant has y^4 / (y^2)^2 = 1, so -2 too
  assert gram.excess_kurtosis(np.full(10, 3.0)) == pytest.approx(-2.0, abs=1e-15)


def test_pair_corr_does_not_overflow():
  """s = 1, ReLU, L = 1024: q = 1.5^1024 q_0 ~ 2e180, so q1 q2 overflows float64; PairKernel.corr and correlations
  avoid forming it."""
  k = rf.finite_depth_kernel("relu", rf.PairKernel.from_correlation(np.array([0.5])), 1024, 1.0)
  c = k.corr
  assert 0.999 < c[0] < 1.0
  covariance = np.array([[[k.q1[0], k.k12[0]], [k.k12[0], k.q2[0]]]])
  np.testing.assert_allclose(gram.correlations(covariance, [(0, 1)]), c[None], rtol=1e-15)


def test_config_validation():
  cconfig.CommutativityConfig(seeds=(0, 1))
  for bad in (dict(kernel_depths=(4, 8, 16, 64)), dict(kernel_depths=(4, 32)), dict(keras_nets=10),
              dict(activations=("tanh",)), dict(seeds=(0,)), dict(widths=(16, 32))):
    with pytest.raises(ValueError):
      cconfig.CommutativityConfig(**{"seeds": (0, 1), **bad})
  assert cconfig.CommutativityConfig(seeds=(0, 1, 2), keras_nets=100).keras_nets_per_seed == 34


# ------------------------------------------------------------------------------------------------------
# (e) claim checks on hand-made metrics
# ------------------------------------------------------------------------------------------------------
SEEDS = (0, 1, 2, 3)
NOISE = np.array([0.98, 1.0, 1.01, 1.01])   # per-seed relative spread (sd 1.4%)
WIDTHS, DEPTHS, KERNEL_DEPTHS = (16, 32, 64, 128), (4, 16, 32, 64), (4, 8, 16, 32, 64)
C0S = (0.0, 0.25, 0.5, 0.75, 0.9)
KS_POINTS = ((64, 4), (64, 16))


def one(value: float) -> Metric:
  return Metric(values=[float(value)], seeds=[None])


def per_seed(value: float) -> Metric:
  return Metric(values=[float(v) for v in value * NOISE], seeds=list(SEEDS))


def good_metrics() -> dict[str, Metric]:
  """Metrics that satisfy every claim, shaped like a smoke run's (ReLU, synthetic inputs)."""
  m = {"limit_var_ratio/relu": one(math.exp(0.5)),
       "max_rel_diff/infinite_width_kernel_library_vs_recursion/relu": one(1e-15),
       "theory_corr_error_coefficient/relu/synthetic": one(0.022)}
  errors = [0.022 / d * (1 + 0.3 / d) for d in KERNEL_DEPTHS]     # e_c / L + O(1/L^2)
  for d, e in zip(KERNEL_DEPTHS, errors):
    m[f"infinite_width_corr_error/relu/synthetic/L={d}"] = one(e)
  m["slope/infinite_width_corr_error_vs_L/relu/synthetic"] = one(stats.fit_power_law(KERNEL_DEPTHS, errors).slope)
  m["depth_times_infinite_width_corr_error/relu/synthetic/at_max_L"] = one(KERNEL_DEPTHS[-1] * errors[-1])
  for n in WIDTHS:   # the O(n^-1/2) fluctuation, the same at every depth
    for d in DEPTHS:
      m[f"mc_corr_abs_error/relu/synthetic/n={n}/L={d}"] = per_seed(0.65 / math.sqrt(n))
  for path in ("depth_first", "joint"):
    m[f"slope/mc_corr_abs_error_vs_n/{path}/relu/synthetic"] = per_seed(-0.5)
  for d in (4, 16, 64):
    for n in (16, 64, 256):
      m[f"gauss_excess_kurtosis/relu/L={d}/n={n}"] = per_seed(8.0 / n)
  k0 = rf.PairKernel.from_correlation(np.array(C0S))
  for d in KERNEL_DEPTHS:
    m[f"infinite_width_var_ratio/relu/scale=one/L={d}"] = one(1.5 ** d)
    m[f"infinite_width_var_ratio/relu/scale=inverse_depth/L={d}"] = one(1 + 0.5 / d)
    for c0, c in zip(C0S, rf.finite_depth_kernel("relu", k0, d, 1.0).corr):
      m[f"infinite_width_corr/relu/scale=one/c0={c0:g}/L={d}"] = one(c)
  for what in ("infinite_width_var_ratio", "infinite_width_corr_change"):
    m[f"slope/{what}_vs_L/relu/scale=inverse_depth"] = one(-1.0)
  for d in DEPTHS:
    m[f"mc_rel_change/relu/scale=inverse_depth/n=128/L={d}"] = per_seed(0.36 * (4 / d) ** 0.5)
  for n, d in KS_POINTS:
    for what in [f"c0={c0:g}" for c0 in C0S] + ["q_anchor"]:
      m[f"keras_vs_gram_ks_pvalue/relu/n={n}/L={d}/{what}"] = one(0.3)
  return m


def outcomes_at(metrics, dtype):
  return {claim.name: claim.evaluate(metrics, "smoke", dtype)["passed"] for claim in cclaims.CLAIMS}


def outcomes(metrics) -> dict[str, bool]:
  return {claim.name: claim.evaluate(metrics)["passed"] for claim in cclaims.CLAIMS}


def test_every_claim_passes_on_good_metrics():
  results = outcomes(good_metrics())
  assert set(results) == {c.name for c in cclaims.CLAIMS} and len(results) == 12
  assert all(results.values()), results


KERNEL_MATCH_FLOAT64 = claims_lib._at_precision(cclaims.KERNEL_MATCH, "float64")  # pylint: disable=protected-access


def _collapse_corr(c_prev: float, depth_prev: int, depth: int, slope: float) -> float:
  """c at `depth` such that (1 - c)^(-1/2) rises by slope * (depth - depth_prev) from c_prev."""
  return 1.0 - ((1.0 - c_prev) ** -0.5 + slope * (depth - depth_prev)) ** -2.0


def _mutations():
  """(claim that must fail, {metric: new Metric}) with one metric moved just beyond its tolerance."""
  good = good_metrics()
  c32 = good["infinite_width_corr/relu/scale=one/c0=0.5/L=32"].mean
  return [
      ("flow_relu_variance_closed_form", {"limit_var_ratio/relu": one(math.exp(0.5) + 2e-10)}),
      ("library_kernel_is_the_residual_recursion",
       {"max_rel_diff/infinite_width_kernel_library_vs_recursion/relu": one(2 * KERNEL_MATCH_FLOAT64)}),
      ("width_first_path_converges_at_rate_1_over_L",   # L * error 3% off e_c (tolerance 2%)
       {"depth_times_infinite_width_corr_error/relu/synthetic/at_max_L": one(0.022 * 1.03)}),
      ("width_first_path_converges_at_rate_1_over_L",
       {"slope/infinite_width_corr_error_vs_L/relu/synthetic": one(-0.94)}),
      ("width_first_path_converges_at_rate_1_over_L",   # not decreasing at the last step
       {"infinite_width_corr_error/relu/synthetic/L=64": good["infinite_width_corr_error/relu/synthetic/L=32"]}),
      ("depth_first_rate_is_n_to_the_minus_half",
       {"slope/mc_corr_abs_error_vs_n/depth_first/relu/synthetic": per_seed(-0.62)}),
      ("depth_first_path_converges",   # no decrease from n = 64 to 128 (at every L: uniform in depth still holds)
       {f"mc_corr_abs_error/relu/synthetic/n=128/L={d}": per_seed(0.65 / 8) for d in DEPTHS}),
      ("joint_rate_is_n_to_the_minus_half", {"slope/mc_corr_abs_error_vs_n/joint/relu/synthetic": per_seed(-0.38)}),
      ("joint_path_converges", {"mc_corr_abs_error/relu/synthetic/n=32/L=32": per_seed(0.65 / 4)}),
      ("finite_width_error_uniform_in_depth",   # 1.5 x the shallowest, above the 1.25 allowed
       {"mc_corr_abs_error/relu/synthetic/n=16/L=64": per_seed(1.5 * 0.65 / 4)}),
      ("gaussianity_improves_with_width", {"gauss_excess_kurtosis/relu/L=16/n=256": per_seed(8.0 / 64)}),
      ("branch_scale_one_degenerates",   # q_L off 1.5^L by 1e-9 (rel), above float64 rounding (~5e-14)
       {"infinite_width_var_ratio/relu/scale=one/L=16": one(1.5 ** 16 * (1 + 1e-9))}),
      ("branch_scale_one_degenerates",   # variance ratio below 10 x the flow limit
       {"infinite_width_var_ratio/relu/scale=one/L=64": one(9.9 * math.exp(0.5))}),
      ("branch_scale_one_degenerates",   # slope 7% below sqrt(2)/(9 pi) for one pair (tolerance 6%)
       {"infinite_width_corr/relu/scale=one/c0=0.5/L=64":
        one(_collapse_corr(c32, 32, 64, 0.93 * cclaims.SCALE_ONE_COLLAPSE_SLOPE))}),
      ("branch_scale_one_degenerates",   # ... and 7% above
       {"infinite_width_corr/relu/scale=one/c0=0.5/L=64":
        one(_collapse_corr(c32, 32, 64, 1.07 * cclaims.SCALE_ONE_COLLAPSE_SLOPE))}),
      ("branch_scale_one_degenerates",   # 1 - c_L not decreasing from L = 4 to 8
       {"infinite_width_corr/relu/scale=one/c0=0.9/L=8":
        one(good["infinite_width_corr/relu/scale=one/c0=0.9/L=4"].mean - 1e-6)}),
      ("branch_scale_one_degenerates", {"infinite_width_corr/relu/scale=one/c0=0.9/L=64": one(1.0)}),
      ("branch_scale_inverse_depth_is_trivial",
       {"slope/infinite_width_corr_change_vs_L/relu/scale=inverse_depth": one(-0.85)}),
      ("branch_scale_inverse_depth_is_trivial",
       {"mc_rel_change/relu/scale=inverse_depth/n=128/L=64": per_seed(0.36 * 0.5)}),
      ("keras_nets_match_gram_simulator",   # 12 tests: Bonferroni threshold 0.01 / 12 = 8.3e-4
       {"keras_vs_gram_ks_pvalue/relu/n=64/L=16/c0=0.5": one(8e-4)}),
      ("keras_nets_match_gram_simulator", {"keras_vs_gram_ks_pvalue/relu/n=64/L=4/q_anchor": one(1e-6)}),
  ]


@pytest.mark.parametrize("claim, moved", _mutations(), ids=lambda v: v if isinstance(v, str) else "")
def test_claim_fails_when_one_metric_moves_beyond_its_tolerance(claim, moved):
  metrics = good_metrics()
  assert set(moved) <= set(metrics)   # a moved metric, not a new one
  metrics.update(moved)
  results = outcomes(metrics)
  assert not results[claim], claim
  assert all(ok for name, ok in results.items() if name != claim), results   # and only that claim


def _rounded_to_float32(factor: float):
  """The identity metrics moved by `factor` x their float32 rounding bound (the float32 run's own error)."""
  bound = claims_lib._at_precision(cclaims.KERNEL_MATCH, "float32")  # pylint: disable=protected-access
  ulps = F.VAR_RATIO_ROUNDING.ulps_at({"L": 16})
  q16 = 1.5 ** 16 * (1 + factor * ulps * (precision.unit_roundoff("float32") + precision.unit_roundoff("float64")))
  return {"max_rel_diff/infinite_width_kernel_library_vs_recursion/relu": one(factor * bound),
          "infinite_width_var_ratio/relu/scale=one/L=16": one(q16)}


def test_identity_claims_allow_float32_rounding_in_a_float32_run_only():
  """Within float32's rounding bound: passes in a float32 run, fails in a float64 one; beyond it, fails in both."""
  metrics = {**good_metrics(), **_rounded_to_float32(0.5)}
  assert all(outcomes_at(metrics, "float32").values())
  float64 = outcomes_at(metrics, "float64")
  assert not float64["library_kernel_is_the_residual_recursion"] and not float64["branch_scale_one_degenerates"]
  beyond = outcomes_at({**good_metrics(), **_rounded_to_float32(2.0)}, "float32")
  assert not beyond["library_kernel_is_the_residual_recursion"] and not beyond["branch_scale_one_degenerates"]


def test_claims_just_inside_their_tolerance_pass():
  """The same moves, inside the tolerances: the checks are not failing for an unrelated reason."""
  good = good_metrics()
  c32 = good["infinite_width_corr/relu/scale=one/c0=0.5/L=32"].mean
  for moved in ({"keras_vs_gram_ks_pvalue/relu/n=64/L=16/c0=0.5": one(9e-4)},
                {"infinite_width_corr/relu/scale=one/c0=0.5/L=64":
                 one(_collapse_corr(c32, 32, 64, 0.95 * cclaims.SCALE_ONE_COLLAPSE_SLOPE))},
                {"infinite_width_corr/relu/scale=one/c0=0.5/L=64":
                 one(_collapse_corr(c32, 32, 64, 1.05 * cclaims.SCALE_ONE_COLLAPSE_SLOPE))},
                {"depth_times_infinite_width_corr_error/relu/synthetic/at_max_L": one(0.022 * 1.015)},
                {"limit_var_ratio/relu": one(math.exp(0.5) + 5e-11)}):
    metrics = good_metrics()
    metrics.update(moved)
    assert all(outcomes(metrics).values()), moved


def test_missing_metrics_fail_the_claim_without_raising():
  metrics = good_metrics()
  del metrics["limit_var_ratio/relu"]
  del metrics["theory_corr_error_coefficient/relu/synthetic"]
  results = outcomes(metrics)
  assert not results["branch_scale_one_degenerates"] and not results["width_first_path_converges_at_rate_1_over_L"]
  empty = outcomes({})
  assert not any(empty.values())


# ------------------------------------------------------------------------------------------------------
# (f) one tiny run end to end
# ------------------------------------------------------------------------------------------------------
@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=30)
def _tiny():
  """Command: tests/benchmarks/test_commutativity.py (in-process runner)
  Expected result: every claim passes."""
  return cconfig.CommutativityConfig(
      seeds=(0, 1, 2, 3), kernel_depths=(8, 32, 64), widths=(16, 32, 64), depths=(4, 16, 32, 64),
      gauss_widths=(16, 64), gauss_depths=(4,), gauss_samples=200_000, keras_points=((32, 4),), keras_nets=100)


def test_tiny_run_passes_every_claim(tmp_path):
  record = helpers.run_tiny(EXPERIMENT, _tiny, str(tmp_path / "run"), "commutativity_tiny_test")
  failed = [c for c in record["claims"] if not c["passed"]]
  assert not failed, failed
  assert len(record["claims"]) == len(cclaims.CLAIMS)
  assert set(record["phases"]) == {"inputs", "flow", "infinite_width", "monte_carlo", "keras", "gaussianity"}
  metrics = record["metrics"]
  expected = ["limit_var_ratio/relu", "limit_corr/relu/c0=0.5", "infinite_width_corr/relu/scale=one/c0=0.5/L=64",
              "infinite_width_var_ratio/relu/scale=one/L=64", "mc_corr_abs_error/relu/synthetic/n=64/L=64",
              "keras_corr_abs_error/relu/synthetic/n=32/L=4", "keras_vs_gram_ks_pvalue/relu/n=32/L=4/q_anchor",
              "gauss_excess_kurtosis/relu/L=4/n=16"]
  expected += [f"keras_vs_gram_ks_pvalue/relu/n=32/L=4/c0={c0:g}" for c0 in cconfig.INPUT_CORRELATIONS]
  missing = [m for m in expected if m not in metrics]
  assert not missing, missing
  assert metrics["keras_corr_abs_error/relu/synthetic/n=32/L=4"]["seeds"] == [0, 1, 2, 3]
  assert len(Table.of(F.KS_PVALUE, metrics_from_json(metrics))) == len(cconfig.INPUT_CORRELATIONS) + 1
  assert "float64" in record["notes"]["keras_nets"] and "100 nets" in record["notes"]["keras_nets"]


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _tiny_both_activations_and_images():
  """Command: tests/benchmarks/test_commutativity.py (in-process runner)
  Expected result: every claim passes (the small tier's structure: ReLU and Erf, CIFAR-10 pairs beside the
  synthetic ones)."""
  return cconfig.CommutativityConfig(
      seeds=(0, 1, 2, 3), activations=gram.ACTIVATIONS, cifar_pairs=2, kernel_depths=(8, 32, 64),
      widths=(16, 64, 256), depths=(4, 16, 64, 256), nets_per_seed=32, gauss_widths=(16, 64), gauss_depths=(4,),
      gauss_samples=200_000, keras_points=((32, 4),), keras_nets=100)


@pytest.mark.skipif(not os.path.isdir(EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")
def test_tiny_run_with_both_activations_and_cifar_pairs(tmp_path):
  record = helpers.run_tiny(EXPERIMENT, _tiny_both_activations_and_images, str(tmp_path / "run"), "commutativity_tiny_images_test", mirrors=f"cifar10={EXACT_MIRROR}")
  failed = [c["name"] for c in record["claims"] if not c["passed"]]
  assert not failed, failed
  metrics = record["metrics"]
  for act in gram.ACTIVATIONS:
    assert f"limit_corr/{act}/cifar10/pair=1" in metrics
    assert f"mc_corr_abs_error/{act}/cifar10/n=64/L=256" in metrics
  assert {"input_corr/cifar10/pair=0", "input_corr/cifar10/pair=1"} <= set(metrics)
  assert record["datasets"][0]["dataset_id"] == "cifar10"
