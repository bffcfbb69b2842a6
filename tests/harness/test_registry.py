"""Registry: tiers must document themselves; experiments are found by name; runner overrides."""
import dataclasses

import pytest

from harness import preflight, registry, runner
from harness.errors import HarnessError
from tests.harness import toy_experiment


def test_tier_docstring_must_state_command_and_result_but_not_the_runtime():
  with pytest.raises(ValueError, match="Expected result"):
    @registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=1)
    def smoke():
      """Command: x."""
      return None
  with pytest.raises(ValueError, match="written once|not the docstring"):
    @registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=1)
    def smoke2():
      """Command: x. Expected runtime: 1 s. Expected result: y."""
      return None


def test_experiments_are_the_folders_of_benchmarks():
  modules = [m for m in registry.experiment_modules() if m.startswith("benchmarks.")]
  assert modules == ["benchmarks.commutativity.experiment", "benchmarks.finite_vs_infinite.experiment",
                     "benchmarks.pooling.experiment", "benchmarks.width_consistency.experiment"]
  assert set(registry.load_all()) >= {"commutativity", "finite_vs_infinite", "pooling", "width_consistency"}


def test_tier_name_is_checked():
  with pytest.raises(ValueError, match="tier name"):
    registry.tier("medium", hardware=preflight.CI_CPU, expected_runtime_s=1)


def test_every_registered_tier_is_documented():
  for experiment in registry.load_all().values():
    assert experiment.papers, experiment.name
    assert experiment.claims, experiment.name
    for t in experiment.tiers:
      for field in registry.DOC_FIELDS:
        assert field in " ".join(t.doc.split()), (experiment.name, t.name, field)
      config = t.config()
      assert dataclasses.is_dataclass(config) and hasattr(config, "seeds"), (experiment.name, t.name)


def test_unknown_experiment_and_tier():
  registry.register(toy_experiment.EXPERIMENT)
  try:
    with pytest.raises(HarnessError, match="unknown experiment"):
      registry.get("no_such_experiment")
    with pytest.raises(HarnessError, match="no tier 'medium'"):
      registry.get("toy").tier("medium")
  finally:
    registry.unregister("toy")


def test_a_seed_count_the_config_refuses_is_a_user_error():
  @dataclasses.dataclass(frozen=True)
  class Pairs:
    seeds: tuple[int, ...] = (0, 1)

    def __post_init__(self):
      if len(self.seeds) % 2:
        raise ValueError("seeds come in pairs")

  @registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=1)
  def smoke():
    """Command: x. Expected result: y."""
    return Pairs()

  registry.register(dataclasses.replace(toy_experiment.EXPERIMENT, name="pairs", tiers=(smoke,)))
  try:
    with pytest.raises(HarnessError, match="--seeds=3: seeds come in pairs"):
      runner.run("pairs", "smoke", n_seeds=3, verbose=False)
  finally:
    registry.unregister("pairs")


def test_seed_and_dtype_overrides():
  config = toy_experiment.smoke.config()
  assert runner.resolve_seeds(config, None) == (0, 1, 2, 3, 4, 5)
  assert runner.resolve_seeds(config, 3) == (0, 1, 2)
  assert runner.resolve_dtype(config, None) == "float64"
  with pytest.raises(HarnessError):
    runner.resolve_dtype(config, "bfloat16")


def test_run_writes_record(tmp_path):
  registry.register(toy_experiment.EXPERIMENT)
  try:
    run_dir, record = runner.run("toy", "smoke", n_seeds=2, dtype="float32", output_dir=str(tmp_path / "r"),
                                 verbose=False)
  finally:
    registry.unregister("toy")
  assert record["seeds"] == [0, 1] and record["config"]["seeds"] == [0, 1] and record["dtype"] == "float32"
  assert record["metrics"]["mc_variance/normal"]["n"] == 2
  assert record["environment"]["float_precision"] == "float32"
  assert record["environment"]["git"]["commit"]
