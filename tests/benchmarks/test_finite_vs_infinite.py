"""finite_vs_infinite: specs, the learning-rate rule, the kernel flow, the pair estimator of a squared bias, the
float32 breakdown size, config validation, every claim on synthetic metrics (passes where it should, fails when one
number moves beyond its tolerance), one tiny run end to end."""
import dataclasses
import math
import os

import numpy as np
import pytest

from benchmarks.finite_vs_infinite import architectures as farch
from benchmarks.finite_vs_infinite import claims as C
from benchmarks.finite_vs_infinite import config as fconfig
from benchmarks.finite_vs_infinite import families as F
from benchmarks.finite_vs_infinite import phases as P
from benchmarks.finite_vs_infinite.experiment import EXPERIMENT
from harness import claims, errors, nets, preflight, registry, training
from harness.metrics import Metric
from tests.benchmarks import helpers

SEEDS = list(range(8))


# ------------------------------------------------------------------------------------------------------
# Specs, rates, the kernel flow
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", fconfig.ARCHITECTURES)
def test_each_architecture_is_one_spec_for_net_and_kernel(name):
  spec = farch.architecture(name, depth=2)
  model = spec.keras_model(width=4, input_shape=(4, 4, 3), num_outputs=P.NUM_CLASSES, seed=0)
  assert model.output_shape == (None, P.NUM_CLASSES)
  x = np.random.default_rng(0).normal(size=(3, 4, 4, 3))
  k = spec.kernel(x, None, get=("nngp", "ntk"), dtype="float64")
  assert np.all(np.linalg.eigvalsh(np.asarray(k["ntk"])) > 0)
  if name == "resnet":
    assert any(isinstance(leaf, nets.Residual) for leaf in _nodes(spec))
  with pytest.raises(ValueError):
    farch.architecture("vit", depth=2)


def _nodes(layer):
  yield layer
  for child in getattr(layer, "layers", ()) + ((layer.branch,) if hasattr(layer, "branch") else ()):
    yield from _nodes(child)


def test_critical_rate_and_flow_of_a_linear_net():
  """For a linear net the NTK is constant: the critical rate is 2 N k / lambda_max exactly, and gradient descent at
  a small rate follows the NTK's flow from the net's own f_0 up to O(rate) (discrete steps vs flow)."""
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(16, 5)), rng.normal(size=(16, 3))
  spec = nets.serial(nets.Dense(w_std=1.3, b_std=0.4))
  theta = 1.3 ** 2 * x @ x.T / 5 + 0.4 ** 2
  assert P.critical_learning_rate(theta, 3) == pytest.approx(2 * 16 * 3 / np.linalg.eigvalsh(theta)[-1], rel=1e-12)
  setup = P.KernelSetup(theta, theta, theta, theta)
  model = spec.keras_model(width=1, input_shape=(5,), num_outputs=3, seed=1, dtype="float64")
  f0 = training.outputs(model, x)
  rate, steps = 0.01 * P.critical_learning_rate(theta, 3), 400
  training.gradient_descent(model, x, y, rate, steps)
  own = f0 + setup.flow(y - f0, steps, rate)
  assert P.relative_distance(training.outputs(model, x), own, own - f0) < 0.01


def test_paired_bias_sq_is_unbiased_where_the_seed_average_is_not():
  """D_s = b + noise with |noise| >> |b|: the mean over pairs of <D_a, D_b> estimates |b|^2; |mean D|^2 adds
  tr Cov / S."""
  rng = np.random.default_rng(0)
  bias = np.full((6, 6), 0.01)
  deviations = [bias + 0.2 * rng.normal(size=(6, 6)) for _ in range(4000)]
  scale = np.ones((6, 6))
  pairs = P.paired_bias_sq(deviations, scale)
  assert len(pairs) == 2000
  truth = float(np.sum(bias ** 2) / np.sum(scale ** 2))
  assert abs(np.mean(pairs) - truth) < 3 * np.std(pairs) / math.sqrt(len(pairs))
  small_average = np.mean(deviations[:8], axis=0)
  assert np.sum(small_average ** 2) / np.sum(scale ** 2) > 10 * truth
  assert len(P.paired_bias_sq(deviations[:5], scale)) == 2  # an odd last seed is left out


def test_breakdown_size_interpolates_on_log_axes():
  assert P.breakdown_size([100, 1000], [0.001, 0.1]) == pytest.approx(math.sqrt(100 * 1000))
  assert P.breakdown_size([100, 1000], [0.02, 0.1]) == 100
  assert P.breakdown_size([100, 1000], [0.001, 0.002]) == math.inf


@pytest.mark.parametrize("change", [dict(fcn_widths=(64, 64, 128)), dict(conv_widths=(8, 16)),
                                    dict(architectures=("fcn", "transformer")), dict(settings=("large_lr",)),
                                    dict(ntk_points=0), dict(seeds=(0, 1)), dict(bias_seeds=(0, 1000, 1001, 1002)),
                                    dict(bias_fcn_widths=(128, 256, 384)), dict(bias_architectures=("cnn_flatten",),
                                                                                architectures=("fcn",))])
def test_bad_configs_are_refused(change):
  base = dict(seeds=(0, 1, 2))
  with pytest.raises(ValueError):
    fconfig.FiniteVsInfiniteConfig(**{**base, **change})


# ------------------------------------------------------------------------------------------------------
# Claims on synthetic metrics
# ------------------------------------------------------------------------------------------------------
def _per_seed(value, spread=0.05, seed=0, n=8):
  rng = np.random.default_rng(seed)
  return Metric([float(value * (1 + spread * e)) for e in rng.normal(size=n)], list(range(n)))


def _one(value):
  return Metric([float(value)], [None])


def synthetic(**exponents):
  """Metrics satisfying every claim: rates with the theory's exponents (override per family key), the ensembles and
  centered nets closer to the kernel, the large rate and weight decay far from it, float32 breaking at 2000."""
  e = {"fluct": -0.5, "change": -1.0, "bias": -2.0, **exponents}
  m = {}
  for i, arch in enumerate(("fcn", "cnn_flatten", "cnn_gap", "resnet")):
    widths = (64, 128, 256, 512, 1024) if arch == "fcn" else (8, 16, 32, 64, 128)
    for j, n in enumerate(widths):
      s = 100 * i + j
      m[F.NTK_INIT_DISTANCE.name(arch=arch, n=n)] = _per_seed(2.0 * n ** e["fluct"], seed=s)
      m[F.NTK_CHANGE.name(arch=arch, n=n)] = _per_seed(5.0 * n ** e["change"], seed=s + 1)
      for model, scale in (("single_own_init", 3.0), ("centered", 2.0)):
        m[F.OUTPUT_DISTANCE.name(arch=arch, setting="small_lr", model=model, n=n)] = _per_seed(
            scale * n ** e["fluct"], seed=s + 2)
      m[F.OUTPUT_DISTANCE.name(arch=arch, setting="small_lr", model="single", n=n)] = _per_seed(3.0, seed=s + 3)
      m[F.ENSEMBLE_DISTANCE.name(arch=arch, setting="small_lr", model="ensemble", n=n)] = _one(1.0)
      m[F.ENSEMBLE_DISTANCE.name(arch=arch, setting="small_lr", model="centered_ensemble", n=n)] = _one(
          1.0 * n ** e["fluct"])
      for setting in ("large_lr", "weight_decay"):
        m[F.OUTPUT_DISTANCE.name(arch=arch, setting=setting, model="centered", n=n)] = _per_seed(1.0, seed=s + 4)
        m[F.PERFORMANCE_GAP.name(score="acc", arch=arch, setting=setting, model="centered", n=n)] = _per_seed(
            -0.02, spread=0.5, seed=s + 5)
      m[F.PERFORMANCE_GAP.name(score="mse", arch=arch, setting="small_lr", model="centered", n=n)] = _per_seed(
          0.05 * n ** e["fluct"], spread=0.2, seed=s + 6)
    for j, n in enumerate(widths[2:]):
      m[F.OUTPUT_BIAS_SQ.name(arch=arch, n=n)] = _per_seed(4.0 * n ** e["bias"], spread=0.3, seed=50 + j, n=16)
      m[F.NTK_INIT_BIAS_SQ.name(arch=arch, n=n)] = _per_seed(1e-4 / n, spread=1.0, seed=60 + j, n=16)
    for kernel, acc in (("nngp", 0.40), ("ntk", 0.38)):
      m[F.KERNEL_SCORE.name(score="acc", arch=arch, kernel=kernel, when="converged")] = _one(acc)
  for kernel in ("nngp", "ntk"):
    for n in (250, 500, 1000, 2000, 4000):
      m[F.PRECISION_ERROR.name(kernel=kernel, n=n)] = _one(1e-2 * (n / 2000) ** 2)
      for precision, acc in (("float64", 0.45), ("float32", 0.44 if n == 4000 else 0.45)):
        m[F.PRECISION_ACC.name(kernel=kernel, precision=precision, n=n)] = _one(acc)
      m[F.CONDITION_NUMBER.name(kernel=kernel, n=n)] = _one(1e3 * n)
    m[F.FLOAT32_BREAKDOWN.name(kernel=kernel)] = _one(2000.0)
  return m


def _outcomes(metrics):
  return {c.name: c.evaluate(metrics, tier="small") for c in C.CLAIMS}


def test_every_claim_passes_on_metrics_that_satisfy_it():
  outcomes = _outcomes(synthetic())
  failed = {name: o["detail"] for name, o in outcomes.items() if not o["passed"]}
  assert not failed
  assert all(o["metrics"] for o in outcomes.values())


@pytest.mark.parametrize("exponents, claim", [
    (dict(fluct=-0.25), "ntk_fluctuations_shrink_as_inverse_sqrt_width"),
    (dict(fluct=-0.8), "outputs_follow_the_kernel_flow_within_inverse_sqrt_width"),
    (dict(change=-0.5), "ntk_change_shrinks_as_inverse_width"),
    (dict(change=-1.4), "ntk_change_shrinks_as_inverse_width"),
    (dict(bias=-1.0), "ensemble_bias_shrinks_as_inverse_width"),
    (dict(fluct=0.0), "performance_gap_vanishes_at_small_rate"),
])
def test_a_wrong_exponent_fails_its_claim(exponents, claim):
  assert not _outcomes(synthetic(**exponents))[claim]["passed"]


def test_each_comparison_claim_fails_when_its_number_moves():
  cases = {
      "ntk_bias_is_subleading": (F.NTK_INIT_BIAS_SQ.name(arch="fcn", n=512), _per_seed(0.01, n=16)),
      "ensembling_and_centering_approach_the_kernel": (
          F.ENSEMBLE_DISTANCE.name(arch="cnn_gap", setting="small_lr", model="centered_ensemble", n=128), _one(1.0)),
      "large_rate_leaves_the_kernel": (
          F.OUTPUT_DISTANCE.name(arch="fcn", setting="large_lr", model="centered", n=1024), _per_seed(0.05)),
      "weight_decay_leaves_the_kernel": (
          F.OUTPUT_DISTANCE.name(arch="cnn_gap", setting="weight_decay", model="centered", n=128), _per_seed(0.15)),
      "float32_error_grows_with_training_set": (F.PRECISION_ERROR.name(kernel="ntk", n=4000), _one(1e-6)),
      "float64_holds_where_float32_breaks": (F.CONDITION_NUMBER.name(kernel="nngp", n=4000), _one(1e11)),
  }
  for claim, (name, metric) in cases.items():
    metrics = synthetic()
    assert name in metrics, name
    metrics[name] = metric
    assert not _outcomes(metrics)[claim]["passed"], claim
  metrics = synthetic()
  for arch in ("fcn", "cnn_flatten", "cnn_gap"):       # the NTK wins in three of four architectures
    metrics[F.KERNEL_SCORE.name(score="acc", arch=arch, kernel="nngp", when="converged")] = _one(0.1)
  assert not _outcomes(metrics)["nngp_often_beats_ntk"]["passed"]
  metrics = synthetic()
  del metrics[F.FLOAT32_BREAKDOWN.name(kernel="ntk")]   # one kernel broke down within the sizes: enough
  assert _outcomes(metrics)["float64_holds_where_float32_breaks"]["passed"]
  del metrics[F.FLOAT32_BREAKDOWN.name(kernel="nngp")]  # none did: the claim fails
  assert not _outcomes(metrics)["float64_holds_where_float32_breaks"]["passed"]


def test_training_rates_are_fitted_over_the_widest_widths():
  """A slope off theory at the two narrowest widths only (a non-lazy start) leaves the rate claims passing."""
  metrics = synthetic()
  for n in (64, 128):
    metrics[F.NTK_CHANGE.name(arch="fcn", n=n)] = _per_seed(0.9, seed=n)
  assert _outcomes(metrics)["ntk_change_shrinks_as_inverse_width"]["passed"]
  metrics[F.NTK_CHANGE.name(arch="fcn", n=256)] = _per_seed(0.9, seed=3)
  assert not _outcomes(metrics)["ntk_change_shrinks_as_inverse_width"]["passed"]


def test_slope_claims_are_asserted_where_resolved():
  by_name = {c.name: c for c in C.CLAIMS}
  assert not by_name["ntk_change_shrinks_as_inverse_width"].asserted_at("smoke")
  assert by_name["ntk_change_shrinks_as_inverse_width"].asserted_at("small")
  assert by_name["ensembling_and_centering_approach_the_kernel"].asserted_at("smoke")
  for name in ("ensemble_bias_shrinks_as_inverse_width", "ntk_bias_is_subleading",
               "cnn_flatten_ntk_change_shrinks_as_inverse_width"):
    assert by_name[name].asserted_at("paper") and not by_name[name].asserted_at("small")


# ------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------
@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _tiny():
  """Command: tests/benchmarks/test_finite_vs_infinite.py (in-process runner)
  Expected result: every phase runs and records each family."""
  return fconfig.FiniteVsInfiniteConfig(seeds=(0, 1, 2, 3), n_train=12, n_test=8, ntk_points=4,
                                        architectures=("fcn", "resnet"), fcn_widths=(8, 16, 32), conv_widths=(2, 4, 8),
                                        steps=3, bias_architectures=("resnet",), bias_conv_widths=(2, 4, 8),
                                        bias_seeds=(100, 101, 102, 103), precision_sizes=(20, 40, 80),
                                        precision_n_test=10)


@pytest.mark.skipif(not os.path.isdir(helpers.EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")
def test_tiny_run_end_to_end(tmp_path):
  """Through the CLI, whose stderr must stay empty: conv Jacobians through pfor, ill-conditioned float32 solves on
  purpose."""
  _, record = helpers.run_tiny_cli("finite_vs_infinite", str(tmp_path / "run"),
                                   mirrors=f"cifar10={helpers.EXACT_MIRROR}")
  assert set(record["phases"]) == {"data", "fcn", "resnet", "precision"}
  metrics = record["metrics"]
  for family in set(F.FAMILIES) - {F.FLOAT32_BREAKDOWN}:   # 80 images are too few for float32 to break
    assert any(family.parse(name) for name in metrics), family.template
  assert metrics[F.NTK_CHANGE.name(arch="resnet", n=8)]["seeds"] == [0, 1, 2, 3]
  assert metrics[F.OUTPUT_BIAS_SQ.name(arch="resnet", n=8)]["seeds"] == [0, 1]   # one value per pair of seeds
  assert all(c["metrics"] for c in record["claims"] if "error" not in c)


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=1)
def _bad_widths():
  """Command: tests/benchmarks/test_finite_vs_infinite.py (in-process runner)
  Expected result: refused before any work."""
  return dataclasses.replace(_tiny.config(), fcn_widths=(32, 16, 8))


def test_a_bad_tier_config_stops_before_any_work(tmp_path):
  with pytest.raises(errors.HarnessError, match="fcn_widths"):
    helpers.run_tiny(EXPERIMENT, _bad_widths, str(tmp_path / "bad"), "finite_vs_infinite_bad_test")
  assert not os.path.exists(tmp_path / "bad")
