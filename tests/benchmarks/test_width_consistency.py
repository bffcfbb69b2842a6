"""width_consistency: config checks, the prediction metrics on hand-made outputs, each claim passing on metrics
that satisfy it and failing when one moves beyond its tolerance, one tiny run end to end on real CIFAR-10."""
import dataclasses
import os
import pickle

import numpy as np
import pytest

from benchmarks.width_consistency import claims as wclaims
from benchmarks.width_consistency import families as F
from benchmarks.width_consistency import phases
from benchmarks.width_consistency.config import WidthConfig
from benchmarks.width_consistency import data as data_lib
from benchmarks.width_consistency.data import Data
from benchmarks.width_consistency.experiment import EXPERIMENT
from harness import distributed, errors, preflight, registry
from harness.context import RunContext
from harness.metrics import Metric
from tests.benchmarks import helpers
from tests.data import fake_data

WIDTHS = (32, 64, 128, 256)
SEEDS = (0, 1, 2, 3)
STEPS = (0, 100, 200)
NOISE = np.array([0.97, 1.0, 1.01, 1.02])
MIRRORS = os.path.join(os.path.dirname(helpers.EXACT_MIRROR), "cifar10-jpeg")


def test_config_is_checked():
  WidthConfig(seeds=SEEDS)
  for bad in ({"widths": (32, 64, 128)}, {"widths": (64, 32, 128, 256)}, {"log_steps": (0, 100)},
              {"seeds": (0, 1, 2)}, {"sweep_seeds": (9,)}, {"log2_lr_grid": {"mup": (1.0, 2.0)}},
              {"model": "transformer"}, {"width_multipliers": (1.0, 2.0, 4.0, 8.0)}, {"sharpness_seeds": 5},
              {"preact_examples": 2000}, {"cnn_widths": (8, 16, 32), "cnn_log2_lr_grid": (1.0, 2.0, 3.0)},
              {"cnn_widths": (8, 16, 32, 64), "cnn_seeds": 1, "cnn_log2_lr_grid": (1.0, 2.0, 3.0)},
              {"cnn_widths": (8, 16, 32, 64), "cnn_log2_lr_grid": (1.0, 2.0)},
              {"model": "resnet18", "width_multipliers": (1.0, 0.5, 2.0, 4.0)},
              {"model": "resnet18", "width_multipliers": (0.3, 1.0, 2.0, 4.0)}):
    with pytest.raises(ValueError):
      WidthConfig(**{"seeds": SEEDS, **bad})


def test_prediction_metrics_on_hand_made_outputs():
  """f_N = f_inf + eps_N with eps ~ N^-1/2 noise: D_N ~ 1/N, the seed variance ~ 1/N."""
  config = WidthConfig(seeds=SEEDS, widths=WIDTHS, steps=200, log_steps=STEPS)
  rng = np.random.default_rng(0)
  limit = rng.normal(size=(500, 10))
  predictions = {(param, n, s): {t: (limit + rng.normal(size=limit.shape) / np.sqrt(n)).astype(np.float32)
                                 for t in STEPS}
                 for param in F.PARAMS for n in WIDTHS for s in SEEDS}
  labels = limit.argmax(1)
  data = Data(np.zeros((1, 8, 8, 3)), np.zeros(1, np.int64), np.zeros((500, 8, 8, 3)), labels)
  ctx = RunContext(seeds=SEEDS, dtype="float32", verbose=False, families=F.FAMILIES)
  phases.record_prediction_metrics(config, ctx, data, predictions)
  view = ctx.view()
  d32 = view.of(F.DISAGREEMENT).one(param="mup", N=32, step=200).mean
  assert d32 == pytest.approx(10 * (1 / 32 + 1 / 256), rel=0.05)   # E||eps_32 - eps_256||^2 over 10 outputs
  variance = view.of(F.OUTPUT_VARIANCE).select(param="mup", step=200)
  assert [m.mean for _, m in variance.series("N")] == pytest.approx([1 / n for n in WIDTHS], rel=0.1)
  slope = view.of(F.DISAGREEMENT_SLOPE).one(param="mup", step=200)
  assert -1.0 < slope.mean < -0.6 and slope.seeds == list(SEEDS)   # 1/N + 1/256: flatter than -1
  ensemble = view.of(F.ENSEMBLE_LOSS).select(param="mup", N=32)
  assert ensemble.one(K=2).mean < ensemble.one(K=1).mean and ensemble.one(K=2).seeds == [0, 1]


def _per_seed(value):
  return Metric([float(v) for v in value * NOISE], list(SEEDS))


def _one(value):
  return Metric([float(value)], [None])


def good_metrics():
  m = {}
  for n in WIDTHS:
    m[F.BEST_LOG2_LR.name(param="mup", N=n)] = _one(5.0)
    m[F.BEST_LOG2_LR.name(param="sp", N=n)] = _one(-1.0 - np.log2(n / 32) / 2)
    for step in STEPS:
      m[F.TEST_LOSS.name(param="mup", N=n, step=step)] = _per_seed(2.3 - step / 1000 - 0.1 / n)
      m[F.OUTPUT_VARIANCE.name(param="mup", N=n, step=step)] = _one(1.0 / n)
    m[F.ENSEMBLE_LOSS.name(param="mup", N=n, K=1)] = Metric([1.7 + 2.0 / n + d for d in (0, 1e-3, 2e-3, 1e-3)], list(SEEDS))
    m[F.ENSEMBLE_LOSS.name(param="mup", N=n, K=2)] = Metric([1.7 + 1.5 / n, 1.7 + 1.5 / n + 1e-3], [0, 1])
    for layer in (0, 1):
      for step in range(4):
        m[F.COORDINATE.name(param="mup", layer=layer, N=n, step=step)] = Metric([0.5 * (1 + 0.02 * np.log2(n / 32))], [0])
  for n in WIDTHS[:-1]:
    for step in STEPS:
      m[F.DISAGREEMENT.name(param="mup", N=n, step=step)] = _per_seed(64.0 / n)
    m[F.PREACT_DISTANCE.name(param="mup", N=n)] = _per_seed(2.0 / n)
  for n in WIDTHS:
    for step in STEPS:
      m[F.SHARPNESS.name(param="mup", N=n, step=step)] = _per_seed(0.1 if step == 0 else 0.6 + step / 1000)
    m[F.SHARPNESS.name(param="sp", N=n, step=0)] = _per_seed(n / 16)
    for step in STEPS:
      m[F.CNN_TEST_LOSS.name(param="mup", N=n, step=step)] = _per_seed(2.3 - step / 1000 - 0.1 / n)
      if n != WIDTHS[-1]:
        m[F.CNN_DISAGREEMENT.name(param="mup", N=n, step=step)] = _per_seed(32.0 / n)
  return m


def outcomes(metrics):
  return {c.name: c.evaluate(metrics)["passed"] for c in wclaims.CLAIMS}


def test_every_claim_passes_on_good_metrics():
  results = outcomes(good_metrics())
  assert len(results) == 12 and all(results.values()), results


@pytest.mark.parametrize("claim, moved", [
    ("mup_learning_rate_transfers", {F.BEST_LOG2_LR.name(param="mup", N=256): _one(7.0)}),
    ("standard_parameterization_learning_rate_moves", {F.BEST_LOG2_LR.name(param="sp", N=256): _one(-1.0)}),
    ("loss_curves_agree_across_widths", {F.TEST_LOSS.name(param="mup", N=256, step=100): _per_seed(2.2 * 0.97)}),
    ("predictions_agree_more_with_width", {F.DISAGREEMENT.name(param="mup", N=128, step=200): _per_seed(1.0)}),
    ("output_variance_is_one_over_width", {F.OUTPUT_VARIANCE.name(param="mup", N=256, step=200): _one(1 / 64)}),
    ("ensembles_of_narrow_nets_lose_to_one_wide_net",   # the ensemble as good as the widest net
     {F.ENSEMBLE_LOSS.name(param="mup", N=32, K=2): Metric([1.7 + 2.0 / 256, 1.7 + 2.0 / 256 + 1e-4], [0, 1])}),
    ("mup_coordinates_stay_flat", {F.COORDINATE.name(param="mup", layer=1, N=256, step=3): Metric([0.7], [0])}),
    ("preactivation_distributions_converge", {F.PREACT_DISTANCE.name(param="mup", N=128): _per_seed(0.1)}),
    ("sharpness_consistent_across_widths", {F.SHARPNESS.name(param="mup", N=256, step=100): _per_seed(0.7 * 1.15)}),
    ("initial_sharpness_scales_as_parameterization_predicts",   # SP's initial sharpness flat in N
     {F.SHARPNESS.name(param="sp", N=n, step=0): _per_seed(2.0) for n in WIDTHS}),
    ("cnn_loss_curves_agree_across_widths", {F.CNN_TEST_LOSS.name(param="mup", N=256, step=100): _per_seed(2.2 * 0.97)}),
    ("cnn_predictions_agree_more_with_width", {F.CNN_DISAGREEMENT.name(param="mup", N=64, step=200): _per_seed(1.5)}),
    ("initial_sharpness_scales_as_parameterization_predicts",   # muP's initial sharpness growing with N
     {F.SHARPNESS.name(param="mup", N=n, step=0): _per_seed(0.1 * n / 32) for n in WIDTHS}),
])
def test_claim_fails_when_one_metric_moves_beyond_its_tolerance(claim, moved):
  metrics = good_metrics()
  assert set(moved) <= set(metrics)
  metrics.update(moved)
  results = outcomes(metrics)
  assert not results[claim] and all(ok for name, ok in results.items() if name != claim), results


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def _tiny():
  """Command: tests/benchmarks/test_width_consistency.py (in-process runner)
  Expected result: the run completes and records every family."""
  return WidthConfig(seeds=(0, 1), ensemble_size=1, sharpness_seeds=1, widths=(8, 16, 32, 64), batch_size=16,
                     steps=20, log_steps=(0, 10, 20), sweep_steps=4,
                     log2_lr_grid={"mup": (4.0, 5.0, 6.0), "sp": (-3.0, -2.0, -1.0)}, n_eval=200, preact_examples=100,
                     cnn_widths=(2, 4, 8, 16), cnn_seeds=2, cnn_log2_lr_grid=(4.0, 5.0, 6.0))


@pytest.mark.skipif(not (os.path.isdir(helpers.EXACT_MIRROR) and os.path.isdir(MIRRORS)),
                    reason="needs ../shared/data/cifar10-exact-subset and cifar10-jpeg")
def test_tiny_run_end_to_end(tmp_path):
  record = helpers.run_tiny(EXPERIMENT, _tiny, str(tmp_path / "run"), "width_consistency_tiny_test",
                            mirrors=f"cifar10={helpers.EXACT_MIRROR},cifar10_jpeg={MIRRORS}")
  assert set(record["phases"]) == {"data", "lr_sweep", "train", "prediction_metrics", "coordinates", "cnn"}
  assert [d["dataset_id"] for d in record["datasets"]] == ["cifar10_jpeg", "cifar10"]
  assert record["datasets"][0]["stream"] and record["datasets"][0]["n"] == 20 * 16
  metrics = record["metrics"]
  for family in F.FAMILIES:
    assert any(family.parse(name) for name in metrics), family.template
  assert metrics[F.TEST_LOSS.name(param="mup", N=64, step=20)]["seeds"] == [0, 1]
  assert all(c["metrics"] for c in record["claims"])


IN_PROCESS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"


@registry.tier("paper", hardware=preflight.CI_CPU, expected_runtime_s=120)
def _tiny_resnet():
  """Command: tests/benchmarks/test_width_consistency.py (in-process runner)
  Expected result: the paper tier's path (ResNet family, CIFAR-5m parts re-read for each net) runs end to end."""
  return WidthConfig(seeds=(0, 1), ensemble_size=1, model="resnet18", resnet_blocks=(1, 1, 1, 1),
                     width_multipliers=(1 / 32, 1 / 16, 1 / 8, 1 / 4),
                     train_dataset="cifar5m", eval_dataset="cifar5m", hold_stream=False, downsample=4, n_eval=24,
                     preact_examples=24, batch_size=8, steps=4, log_steps=(0, 2, 4), sweep_steps=2,
                     log2_lr_grid={"mup": (-1.0, 0.0, 1.0), "sp": (-3.0, -2.0, -1.0)}, coordinate_steps=1,
                     sharpness_examples=8, sharpness_iterations=2, jit_compile=False)


def test_tiny_resnet_run_on_fake_cifar5m_parts(tmp_path):
  folder = str(tmp_path / "cifar5m")
  fake_data.write_mirror(folder, {"part0.npz": fake_data.random_examples(40, seed=0),
                                  "part5.npz": fake_data.random_examples(30, seed=5)}, keys=("X", "Y"))
  record = helpers.run_tiny(EXPERIMENT, _tiny_resnet, str(tmp_path / "run"), "width_consistency_resnet_test",
                            mirrors=f"cifar5m={folder}")
  assert record["config"]["widths"] == [2, 4, 8, 16]
  train, test = record["datasets"]
  assert (train["dataset_id"], train["served"], test["dataset_id"], test["n"]) == ("cifar5m", "anew for each net, in this order", "cifar5m", 24)
  metrics = record["metrics"]
  for family in set(F.FAMILIES) - {F.CNN_TEST_LOSS, F.CNN_DISAGREEMENT, F.CNN_LR_SWEEP_LOSS}:  # no CNN phase here
    assert any(family.parse(name) for name in metrics), family.template
  assert metrics[F.TEST_LOSS.name(param="mup", N=16, step=4)]["seeds"] == [0, 1]


def test_lr_sweep_points_on_beam_equal_the_local_sweep(tmp_path):
  """The paper tier's data path (CIFAR-5m re-read for each net): the sweep's (param, width, rate, seed) points as
  Beam elements, each worker re-reading the stream itself, give the local sweep's losses; a rerun finds them stored.
  MLPs stand in for the ResNets (test_tiny_resnet_run_on_fake_cifar5m_parts runs those): the engine and the stream
  are what is tested, and an MLP point costs a fraction of a ResNet's."""
  folder = str(tmp_path / "cifar5m")
  fake_data.write_mirror(folder, {"part0.npz": fake_data.random_examples(40, seed=0),
                                  "part5.npz": fake_data.random_examples(30, seed=5)}, keys=("X", "Y"))
  config = dataclasses.replace(_tiny_resnet.config(), model="mlp", width_multipliers=(), widths=(8, 16, 32, 64))
  sweeps = {}
  for kind in ("local", "beam", "beam again"):
    engine = (distributed.Engine() if kind == "local"
              else distributed.Engine("beam", IN_PROCESS, str(tmp_path / "points")))
    ctx = RunContext(seeds=config.seeds, dtype=config.dtype, mirrors=f"cifar5m={folder}", verbose=False, engine=engine)
    chosen = phases.run_lr_sweep(config, ctx, data_lib.load(ctx, config))
    sweeps[kind] = (chosen, {name: m.values for name, m in ctx.metrics.items()})
  assert sweeps["beam"] == sweeps["local"] == sweeps["beam again"]
  assert len(list((tmp_path / "points").glob("points/*/point_*.npz"))) == 2 * 4 * 3 * len(config.sweep_seeds)
  # the run's models travel to a Beam worker as an empty Nets, which builds its own: a point on the sender's model
  # (trained before at another rate and seed, redrawn) equals the worker's on a fresh one; the pickle is the same
  # whatever the sender holds (the points' job key)
  nets = phases.Nets()
  data = data_lib.load(RunContext(seeds=config.seeds, dtype=config.dtype, mirrors=f"cifar5m={folder}", verbose=False),
                       config)
  phases.sweep_point(config, data, "mup", 8, 0.0, 1, nets=nets)
  held = nets.model(config, "mup", 8, 1, data.train_x.shape[1:])
  here = phases.sweep_point(config, data, "mup", 8, -1.0, 0, nets=nets)
  assert nets.model(config, "mup", 8, 0, data.train_x.shape[1:]) is held   # reused, not rebuilt
  arrived = pickle.loads(pickle.dumps(nets))
  assert pickle.dumps(nets) == pickle.dumps(phases.Nets())
  assert phases.sweep_point(config, data, "mup", 8, -1.0, 0, nets=arrived) == here


@registry.tier("paper", hardware=preflight.CI_CPU, expected_runtime_s=1)
def _bad_multiplier():
  """Command: tests/benchmarks/test_width_consistency.py (in-process runner)
  Expected result: refused before any work (0.3 x 64 channels is not a whole number)."""
  return dataclasses.replace(_tiny_resnet.config(), width_multipliers=(0.3, 1.0, 2.0, 4.0))


def test_bad_width_multipliers_and_short_streams_stop_before_training(tmp_path):
  """A multiplier that does not divide the stage channels, or a CIFAR-5m mirror shorter than the tier's stream (the
  pre-flight): a one-line HarnessError (exit 2 from the CLI) before any training, and no run directory."""
  with pytest.raises(errors.HarnessError, match="does not divide"):
    helpers.run_tiny(EXPERIMENT, _bad_multiplier, str(tmp_path / "bad"), "width_consistency_bad_test")
  assert not os.path.exists(tmp_path / "bad")
  folder = str(tmp_path / "short")
  fake_data.write_mirror(folder, {"part0.npz": fake_data.random_examples(20, seed=0),
                                  "part5.npz": fake_data.random_examples(30, seed=5)}, keys=("X", "Y"))
  with pytest.raises(errors.HarnessError, match="cifar5m train: the tier needs its first 32 examples, .* holds 20"):
    helpers.run_tiny(EXPERIMENT, _tiny_resnet, str(tmp_path / "short_run"), "width_consistency_short_test",
                     mirrors=f"cifar5m={folder}")
  assert not os.path.exists(tmp_path / "short_run")
