"""The pooling experiment's metric code: specs, learning-rate rule, validation split, claims, one tiny run."""
import dataclasses
import math
import os

import numpy as np
import pytest

from benchmarks.pooling import architectures as parch
from benchmarks.pooling import claims as pclaims
from benchmarks.pooling import config as pconfig
from benchmarks.pooling import phases as pphases
from benchmarks.pooling.experiment import EXPERIMENT
from harness import distributed, nets, preflight, registry, training
from tests.benchmarks import helpers
from harness.metrics import Metric

SEED = 0
EXACT_MIRROR = helpers.EXACT_MIRROR


def metric(*values, seeds=None):
  seeds = list(range(len(values))) if seeds is None else seeds
  return Metric(values=[float(v) for v in values], seeds=seeds)


# ------------------------------------------------------------------------------------------------------
# Specs
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", pconfig.ARCHITECTURES)
def test_architectures_have_depth_hidden_layers_and_a_readout(name):
  spec = parch.architecture(name, depth=3)
  leaves = spec.leaves()
  affine = [leaf for leaf in leaves if isinstance(leaf, (nets.Dense, nets.Conv))]
  assert len(affine) == 4 and isinstance(leaves[-1], nets.Dense)
  readout = {"fcn": nets.Flatten, "cnn_flatten": nets.Flatten, "cnn_gap": nets.GlobalAvgPool}[name]
  assert any(isinstance(leaf, readout) for leaf in leaves)
  if name != "fcn":
    assert all(isinstance(a, nets.Conv) for a in affine[:-1])
    circular = parch.architecture(name, depth=2, padding="CIRCULAR")
    assert all(leaf.padding == "CIRCULAR" for leaf in circular.leaves() if isinstance(leaf, nets.Conv))
  model = spec.keras_model(width=4, input_shape=(4, 4, 3), num_outputs=pphases.NUM_CLASSES)
  assert model.output_shape == (None, pphases.NUM_CLASSES)


# ------------------------------------------------------------------------------------------------------
# Critical learning rate: exact for a linear model, whose NTK is constant
# ------------------------------------------------------------------------------------------------------
def _linear_problem():
  rng = np.random.default_rng(SEED)
  x = rng.normal(size=(16, 5))
  y = rng.normal(size=(16, 3))
  return nets.serial(nets.Dense(w_std=1.3, b_std=0.4)), x, y


def test_critical_learning_rate_is_two_bk_over_lambda_max():
  spec, x, _ = _linear_problem()
  theta = 1.3**2 * x @ x.T / 5 + 0.4**2  # NTK of out = w/sqrt(d) x W + b b: exact
  assert pphases.critical_learning_rate(spec, x, 3) == pytest.approx(2 * 16 * 3 / np.linalg.eigvalsh(theta)[-1],
                                                                rel=1e-12)


@pytest.mark.parametrize("factor, converges", [(0.9, True), (1.1, False)])
def test_full_batch_gd_diverges_just_above_the_critical_rate(factor, converges):
  # Linear model, full batch: the outputs follow f <- f - (eta / (B k)) Theta (f - y) exactly, so the top mode
  # grows by |1 - eta lambda_max / (B k)| > 1 per step above the critical rate and shrinks below it.
  spec, x, y = _linear_problem()
  model = spec.keras_model(width=1, input_shape=(5,), num_outputs=3, seed=SEED, dtype="float64")
  rate = factor * pphases.critical_learning_rate(spec, x, 3)
  result = training.train(model, x, y, x, y, training.TrainConfig(learning_rate=rate, epochs=60, batch_size=None),
                          verbose=False)
  losses = np.array(result.losses)
  if converges:
    assert losses[-1] < losses[0]
  else:
    assert result.diverged or losses[-1] > 10 * losses[0]


# ------------------------------------------------------------------------------------------------------
# Validation split
# ------------------------------------------------------------------------------------------------------
def test_validation_split_is_a_seeded_partition():
  fit, val = pphases.validation_split(100, 0.1, seed=3)
  assert len(val) == 10 and len(fit) == 90
  assert sorted(np.concatenate([fit, val]).tolist()) == list(range(100))
  again = pphases.validation_split(100, 0.1, seed=3)
  np.testing.assert_array_equal(again[1], val)
  assert not np.array_equal(pphases.validation_split(100, 0.1, seed=4)[1], val)


# ------------------------------------------------------------------------------------------------------
# The CNN-Flatten vs FCN vs CNN-GAP theory claim
# ------------------------------------------------------------------------------------------------------
def _profiles(flatten_factor=1.02, gap_factor=20.0, size=4):
  metrics = {}
  for phase in ("ordered", "critical", "chaotic"):
    for depth in (1, 5):
      for quantity, base in (("ntk_condition_number", 100.0 * depth), ("ntk_mean_predictor_rms", 0.1 / depth)):
        metrics[f"{quantity}/fcn_{size}px/erf/{phase}/depth={depth}"] = metric(base)
        metrics[f"{quantity}/cnn_flatten_circular_{size}px/erf/{phase}/depth={depth}"] = metric(base * flatten_factor)
        metrics[f"{quantity}/cnn_gap_circular_{size}px/erf/{phase}/depth={depth}"] = metric(base * gap_factor)
  return metrics


def test_flatten_claim_passes_when_flatten_tracks_and_gap_departs():
  ok, detail = _flatten_claim(_profiles())  # pylint: disable=protected-access
  assert ok, detail
  # the GAP side may also be far below the FCN (a smaller condition number)
  assert _flatten_claim(_profiles(gap_factor=1 / 20.0))[0]  # pylint: disable=protected-access


@pytest.mark.parametrize("flatten_factor, gap_factor", [
    (1.0 + pclaims.FLATTEN_FCN_RTOL * 1.01, 20.0),   # CNN-Flatten just beyond its tolerance
    (1.0 - pclaims.FLATTEN_FCN_RTOL * 1.01, 20.0),
    (1.0, pclaims.GAP_FCN_MIN_RATIO * 0.99),          # CNN-GAP too close to the FCN
])
def test_flatten_claim_fails_beyond_its_bounds(flatten_factor, gap_factor):
  assert not _flatten_claim(_profiles(flatten_factor, gap_factor))[0]  # pylint: disable=protected-access


def test_flatten_claim_checks_every_point():
  metrics = _profiles()
  metrics["ntk_mean_predictor_rms/cnn_flatten_circular_4px/erf/critical/depth=5"] = metric(0.1 / 5 * 1.2)
  ok, detail = _flatten_claim(metrics)
  assert not ok and "critical" in detail
  assert not _flatten_claim({})[0]


def _flatten_claim(metrics):
  outcome = _claim("flatten_tracks_fcn_gap_does_not").evaluate(metrics)
  return outcome.passed, outcome.detail


def _claim(name):
  return {c.name: c for c in pclaims.CLAIMS}[name].check


def test_routes_agree_claim():
  point = "theory/q_star/erf/sigma_w2=1.25,sigma_b2=0.05"
  good = {f"{point}/closed_form": metric(1.0), f"{point}/quadrature": metric(1.0 + 1e-9)}
  assert _claim("critical_line_routes_agree").evaluate(good).passed
  bad = {f"{point}/closed_form": metric(1.0), f"{point}/quadrature": metric(1.0 + 1e-5)}
  assert not _claim("critical_line_routes_agree").evaluate(bad).passed
  assert not _claim("critical_line_routes_agree").evaluate({f"{point}/closed_form": metric(1.0)}).passed


def test_accuracy_claims_are_asserted_only_where_resolved():
  by_name = {c.name: c for c in pclaims.CLAIMS}
  for name in ("gap_kernel_beats_flatten", "gap_nngp_beats_flatten", "gap_finite_beats_flatten"):
    assert not by_name[name].asserted_at("smoke") and by_name[name].asserted_at("small")
  assert all(c.asserted_at("smoke") for n, c in by_name.items() if not n.startswith("gap_"))


def test_a_tier_without_cnn_theory_depths_has_no_cnn_theory_phase():
  from benchmarks.pooling.needs import needs  # pylint: disable=import-outside-toplevel
  with_profile = needs(_tiny.config(), (0, 1))
  without = needs(dataclasses.replace(_tiny.config(), cnn_theory_depths=()), (0, 1))
  assert "cnn_theory" in with_profile.phases
  assert [p for p in with_profile.phases if p != "cnn_theory"] == list(without.phases)
  assert [d.phase for d in with_profile.datasets if d.phase == "cnn_theory"] == ["cnn_theory"] * 2
  assert not [d for d in without.datasets if d.phase == "cnn_theory"]


# ------------------------------------------------------------------------------------------------------
# One tiny run end to end on real CIFAR-10 (the exact-pixel mirror beside the repository, as in CI)
# ------------------------------------------------------------------------------------------------------
@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _tiny():
  """Command: tests/benchmarks/test_pooling.py (in-process runner)
  Expected result: the asserted claims pass."""
  return pconfig.PoolingConfig(seeds=(0, 1), n_train=32, n_test=32, width=8, epochs=4, eval_every=2,
                          cnn_theory_depths=(1, 2))


@pytest.mark.skipif(not os.path.isdir(EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")
def test_tiny_run_end_to_end(tmp_path):
  """Through the CLI, whose stderr must stay empty: kernels run eagerly through keras.ops.map, where AutoGraph once
  warned on importlib."""
  code, record = helpers.run_tiny_cli("pooling", str(tmp_path / "run"), mirrors=f"cifar10={EXACT_MIRROR}")
  failed = [c["name"] for c in record["claims"] if c["asserted"] and not c["passed"]]
  assert not failed and code == 0, failed
  assert set(record["phases"]) == {"theory", "cnn_theory", "data", "kernels", "finite"}
  metrics = record["metrics"]
  for arch in pconfig.ARCHITECTURES:
    for what in ("kernel_ntk_test_acc", "kernel_nngp_test_acc", "finite_test_acc", "finite_val_acc"):
      assert metrics[f"{what}/{arch}"]["seeds"] == [0, 1]
      assert all(0.0 <= v <= 1.0 for v in metrics[f"{what}/{arch}"]["values"])
    net = "fcn_4px" if arch == "fcn" else f"{arch}_circular_4px"
    assert f"ntk_condition_number/{net}/erf/critical/depth=2" in metrics
  assert all(math.isfinite(record["notes"][f"learning_rate/{arch}/seed=0"]) for arch in pconfig.ARCHITECTURES)
  assert record["datasets"] and record["datasets"][0]["dataset_id"] == "cifar10"


# ------------------------------------------------------------------------------------------------------
# The paper tier's code path at a reduced size: every phase of `paper()` (depth sweep, heat map), its kernels as one
# Beam pipeline (in this process), its regressions through the blocked Cholesky (factor in a file)
# ------------------------------------------------------------------------------------------------------
PAPER_REDUCED = dict(architectures=("fcn", "cnn_gap"), n_train=20, n_test=10, downsample=8, extra_kernel_depths=(4,),
                     kernel_tile_size=8, solver_block_size=8, width=8, epochs=2, eval_every=1, batch_size=8,
                     cnn_theory_downsample=8, cnn_theory_depths=(1, 2), heatmap_n_train=16, heatmap_n_test=8,
                     heatmap_sigma_w2=(1.0, 2.0), heatmap_depths=(1, 3), heatmap_times=(1.0, math.inf))
# Beam's worker processes are tested by tests/distributed (test_two_worker_processes_assemble_spec_kernel); here each
# would import TensorFlow and compile the kernels again
IN_PROCESS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"


@registry.tier("paper", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _paper_reduced():
  """Command: tests/benchmarks/test_pooling.py (in-process runner, --engine=beam)
  Expected result: every phase of the paper tier runs; kernels from Beam tiles equal the local engine's."""
  return dataclasses.replace(pconfig.paper.config(), **PAPER_REDUCED)


@registry.tier("paper", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _paper_reduced_dense():
  """Command: tests/benchmarks/test_pooling.py (in-process runner)
  Expected result: as _paper_reduced, with the dense solver on the local engine."""
  return dataclasses.replace(pconfig.paper.config(), **{**PAPER_REDUCED, "solver_block_size": None})


@pytest.mark.skipif(not os.path.isdir(EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")
def test_paper_tier_path_runs_on_beam_at_a_reduced_size(tmp_path):
  tiles = tmp_path / "tiles"
  engine = distributed.Engine("beam", IN_PROCESS, str(tiles))
  record = helpers.run_tiny(EXPERIMENT, _paper_reduced, str(tmp_path / "run"), "pooling_paper_reduced",
                            mirrors=f"cifar10={EXACT_MIRROR}", engine=engine)
  assert set(record["phases"]) == {"theory", "cnn_theory", "data", "kernels", "finite", "heatmap"}
  assert record["engine"] == {"kind": "beam", "pipeline_options": IN_PROCESS, "work_dir": str(tiles)}
  # 2 architectures x 2 depths x (train: 3 row tiles of 8 -> 6 upper tiles; test: 2 x 3 tiles), in one pipeline
  assert len(list(tiles.glob("*/tile_*.npz"))) == 2 * 2 * (6 + 6)
  assert len(list(tiles.glob("job-*.pkl"))) == 1
  metrics = record["metrics"]
  for arch in PAPER_REDUCED["architectures"]:
    for name in (f"kernel_ntk_test_acc/{arch}", f"kernel_nngp_test_acc/{arch}/depth=4"):
      assert 0.0 <= metrics[name]["values"][0] <= 1.0, name
  # the same run on the local engine with the dense solver scores the same (kernels equal to rounding; the
  # blocked factor equals the dense one to rounding, tests/nets/test_blocked_cholesky.py)
  local = helpers.run_tiny(EXPERIMENT, _paper_reduced_dense, str(tmp_path / "local"), "pooling_paper_reduced_local",
                           mirrors=f"cifar10={EXACT_MIRROR}")
  for name, metric in metrics.items():
    if name.startswith("kernel_"):
      np.testing.assert_allclose(metric["values"], local["metrics"][name]["values"], rtol=1e-9, err_msg=name)
