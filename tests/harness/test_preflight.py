"""Pre-flight: data held vs asked, hardware and memory vs the tier, runtimes scaled by throughput, declared needs
enforced while a run goes, and every experiment's tiers planned."""
import dataclasses
import math

import numpy as np
import pytest

from harness import preflight, registry, runner
from harness.context import RunContext, UndeclaredNeed
from harness.errors import HarnessError
from harness.preflight import DataNeed, Needs
from tests.data import fake_data
from tests.harness import toy_experiment

CPU_MACHINE = preflight.Machine(cpu_cores=2, memory_bytes=24e9, accelerator_kind="none", accelerator_count=0,
                                accelerator_names=(), gflops=50.0, dtype="float64")
GPU_MACHINE = dataclasses.replace(CPU_MACHINE, memory_bytes=256e9, accelerator_kind="GPU", accelerator_count=1,
                                  accelerator_names=("H100",), gflops=20_000.0)


@pytest.fixture
def mirror(tmp_path):
  folder = str(tmp_path / "mirror")
  fake_data.write_mirror(folder, {"train.npz": fake_data.random_examples(40, seed=1),
                                  "test.npz": fake_data.random_examples(20, seed=2)})
  return f"cifar10={folder}"


def test_hardware_needs_a_throughput_for_both_precisions():
  with pytest.raises(ValueError, match="float32 and float64"):
    preflight.Hardware("x", gflops={"float64": 1.0}, gflops_basis="b")
  with pytest.raises(TypeError, match="preflight.Hardware"):
    registry.tier("smoke", hardware="2 CPU cores", expected_runtime_s=1)


def test_data_held_against_asked(mirror):
  ok = preflight.data_status(DataNeed("cifar10", "train", 40, "data"), mirror)
  assert ok.problem is None and ok.held == 40
  short = preflight.data_status(DataNeed("cifar10", "test", 50, "data"), mirror)
  assert short.held == 20
  assert "cifar10 test" in short.problem and "50" in short.problem and "holds 20" in short.problem
  mirror_only = preflight.data_status(DataNeed("cifar10_jpeg", "train", 10, "data"), mirror)
  assert "only by a mirror" in mirror_only.problem and "HARNESS_MIRRORS" in mirror_only.problem
  missing = preflight.data_status(DataNeed("cifar10", "train", 1, "data"), "cifar10=/no/such/folder")
  assert "does not exist" in missing.problem


def test_hardware_and_memory_problems():
  accelerator = preflight.accelerator_host("1 GPU, 64 GB", gflops={"float32": 1e5, "float64": 1e4}, basis="test",
                                           host_memory_gb=64)
  small = Needs(phases=("a",), memory=(("kernels", 1e9),))
  problems = preflight.hardware_problems(accelerator, CPU_MACHINE, small)
  assert [p.check for p in problems] == ["hardware", "hardware"] and all(p.forcible for p in problems)
  assert "no accelerator" in problems[0].message and "64 GB" in problems[1].message
  assert not preflight.hardware_problems(accelerator, GPU_MACHINE, small)
  huge = Needs(phases=("a",), memory=(("kernels", 30e9),))
  (memory,) = preflight.hardware_problems(preflight.CI_CPU, CPU_MACHINE, huge)
  assert memory.check == "memory" and "31.0 GB" in memory.message and "kernels 30.0 GB" in memory.message
  assert huge.peak_memory_bytes() == pytest.approx(30e9 + preflight.PROCESS_BASE_BYTES)
  # parts that live on the accelerator: host memory without one, checked against the accelerator's with one
  on_device = Needs(phases=("a",), memory=(("images", 1e9),), device_memory=(("jacobians", 30e9),))
  assert on_device.peak_memory_bytes(accelerator=False) == pytest.approx(31e9 + preflight.PROCESS_BASE_BYTES)
  assert [p.check for p in preflight.hardware_problems(preflight.CI_CPU, CPU_MACHINE, on_device)] == ["memory"]
  gpu = dataclasses.replace(GPU_MACHINE, accelerator_memory_bytes=16e9)
  (device,) = preflight.hardware_problems(preflight.CI_CPU, gpu, on_device)
  assert "accelerator memory estimated at 30.0 GB (jacobians 30.0 GB), the accelerator has 16 GB" in device.message
  assert not preflight.hardware_problems(preflight.CI_CPU, dataclasses.replace(gpu, accelerator_memory_bytes=80e9),
                                         on_device)


def test_runtime_scales_by_matmul_throughput():
  tier = toy_experiment.paper  # stated 3600 s on a machine of 1e4 GFLOP/s float64
  stated = preflight.runtime(tier, "float64", CPU_MACHINE, None)
  assert stated.seconds == 3600 and stated.scale == pytest.approx(1e4 / 50) and "stated" in stated.basis
  blessing = {"run_id": "r", "commit": "abc", "wall_time_s": 100.0, "phases": {"sample": 80.0},
              "fingerprint": {"matmul_gflops": {"float64": 25.0}}}
  measured = preflight.runtime(tier, "float64", CPU_MACHINE, blessing)
  assert measured.here_s == pytest.approx(50.0) and measured.phases == {"sample": 80.0}
  assert "measured 100 s" in measured.basis
  older = dict(blessing, fingerprint={})  # blessed before runs recorded their throughput: the tier's machine
  assert preflight.runtime(tier, "float64", CPU_MACHINE, older).scale == pytest.approx(1e4 / 50)


def _plan(tier_name, machine, mirrors=None):
  experiment = toy_experiment.EXPERIMENT
  return preflight.make_plan(experiment, tier_name, mirrors=mirrors, machine=machine, references_dir="/nonexistent")


def test_check_stops_on_data_always_and_on_hardware_unless_forced(mirror):
  assert preflight.check(_plan("smoke", CPU_MACHINE)) == []
  paper = _plan("paper", CPU_MACHINE)
  with pytest.raises(HarnessError) as stopped:
    preflight.check(paper)
  message = str(stopped.value)
  assert "\n" not in message and "--force" in message and "needs 64 GPU/TPU" in message
  assert "expected runtime here" in message and "days" in message   # 3600 s x 1e4/50
  forced = preflight.check(paper, force=True)
  assert {p.check for p in forced} == {"hardware", "memory"}
  record = paper.as_record(forced)
  assert len(record["forced"]) == 3 and record["memory_estimate_bytes"] > 1e13
  short = dataclasses.replace(paper, problems=paper.problems + (
      preflight.Problem("data", "cifar10 train: the tier needs 50000, holds 40", False),))
  with pytest.raises(HarnessError, match="needs 50000"):
    preflight.check(short, force=True)   # no --force past missing data


def test_context_refuses_undeclared_phases_and_reads(mirror):
  needs = Needs(phases=("data",), datasets=(DataNeed("cifar10", "train", 30, "data"),))
  ctx = RunContext(seeds=(0,), dtype="float64", mirrors=mirror, verbose=False, needs=needs)
  with pytest.raises(UndeclaredNeed, match="'other' is not among"):
    with ctx.phase("other"):
      pass
  with ctx.phase("data"):
    assert len(ctx.load_dataset("cifar10", split="train", pool=30).labels) == 30
    with pytest.raises(UndeclaredNeed, match="reads 40 examples of cifar10 train, declared 30"):
      ctx.load_dataset("cifar10", split="train", pool=40)
    with pytest.raises(UndeclaredNeed, match="not declared"):
      ctx.load_dataset("cifar10", split="test", pool=5)
    with pytest.raises(UndeclaredNeed, match="declared 30"):
      ctx.stream("cifar10", "train", 8, num_examples=32)
    assert sum(len(b[1]) for b in ctx.stream("cifar10", "train", 8, num_examples=24)) == 24


def test_progress_yields_every_item_with_or_without_bars(capsys):
  for bars in (False, True):
    ctx = RunContext(seeds=(0,), dtype="float64", verbose=bars, progress=bars)
    assert list(ctx.progress(iter(range(5)))) == [0, 1, 2, 3, 4]
  assert "5/5" in capsys.readouterr().out   # the Keras bar's last line


def test_a_refused_run_leaves_nothing(tmp_path):
  registry.register(toy_experiment.EXPERIMENT)
  try:
    with pytest.raises(HarnessError, match="--force"):
      runner.run("toy", "paper", output_dir=str(tmp_path / "run"), verbose=False)
    assert not (tmp_path / "run").exists()
    _, record = runner.run("toy", "paper", output_dir=str(tmp_path / "run"), verbose=False, force=True)
  finally:
    registry.unregister("toy")
  assert record["forced"] and any("needs 64 GPU/TPU" in f for f in record["preflight"]["forced"])
  assert record["preflight"]["peak_rss_bytes"] > 0 and record["environment"]["matmul_gflops"]["float64"] > 0


@pytest.mark.parametrize("name", ["commutativity", "finite_vs_infinite", "pooling", "width_consistency"])
def test_every_tier_of_every_experiment_plans(name):
  """needs() of each tier: its phases, positive sizes and a finite memory estimate; plans format on this machine."""
  experiment = registry.get(name)
  for tier in experiment.tiers:
    plan = preflight.make_plan(experiment, tier.name, machine=CPU_MACHINE, mirrors="")
    assert plan.needs.phases and all(d.examples > 0 and d.phase in plan.needs.phases for d in plan.needs.datasets)
    assert math.isfinite(plan.needs.peak_memory_bytes()) and all(b >= 0 for _, b in plan.needs.memory)
    table = preflight.format_plan(plan)
    assert f"{name} / {tier.name}" in table and "would stop the run" in table
    if tier.name == "paper":   # sized for an accelerator host: a CPU machine is refused
      assert any(p.check == "hardware" and "this machine has no accelerator" in p.message for p in plan.problems)
  paper = preflight.make_plan(experiment, "paper", machine=GPU_MACHINE, mirrors="")
  assert not [p for p in paper.problems if p.check == "hardware" and "accelerator" in p.message]


def test_paper_tier_memory_estimates_are_the_published_sizes():
  """pooling's paper kernels: 50k x 60k float64, NNGP and NTK = 48 GB; the blocked regression holds three 50k x 4096
  panels (its 50k^2 factor, 20 GB, is on disk)."""
  plan = preflight.make_plan(registry.get("pooling"), "paper", machine=GPU_MACHINE, mirrors="")
  parts = dict(plan.needs.memory)
  assert parts["kernel blocks (NNGP + NTK, train and test)"] == pytest.approx(2 * 50_000 * 60_000 * 8)
  assert parts["regression factor"] == pytest.approx(3 * 50_000 * 4096 * 8)
  assert np.isclose(plan.needs.data_limit("cifar10", "train"), 50_000)


def test_more_than_the_split_holds_is_refused_before_any_source(mirror):
  """A need beyond the official split (say 3 seeds' disjoint blocks of 20,000 images) is refused by size alone."""
  status = preflight.data_status(DataNeed("cifar10", "train", 60_000, "data"), "")
  assert status.problem == "cifar10 train: the tier needs its first 60000 examples, the split has 50000"


def test_a_large_mirror_is_counted_from_its_headers_and_verified_when_read(mirror, monkeypatch):
  monkeypatch.setattr(preflight, "VERIFY_BYTES", 0)
  status = preflight.data_status(DataNeed("cifar10", "train", 40, "data"), mirror)
  assert status.held == 40 and status.problem is None and "checksums verified when read" in status.source


def test_reads_are_checked_per_phase(mirror):
  needs = Needs(phases=("data", "train"), datasets=(DataNeed("cifar10", "train", 30, "data"),
                                                    DataNeed("cifar10", "train", 10, "train")))
  ctx = RunContext(seeds=(0,), dtype="float64", mirrors=mirror, verbose=False, needs=needs)
  with ctx.phase("train"):
    ctx.load_dataset("cifar10", split="train", pool=10)
    with pytest.raises(UndeclaredNeed, match="phase 'train' reads 30 examples of cifar10 train, declared 10"):
      ctx.load_dataset("cifar10", split="train", pool=30)
  with pytest.raises(ValueError, match="not among"):
    Needs(phases=("data",), datasets=(DataNeed("cifar10", "train", 1, "other"),))


def test_runtime_follows_where_the_math_runs_and_the_seeds():
  host_hardware = preflight.Hardware("h", gflops={"float32": 1000.0, "float64": 500.0},
                                     host_gflops={"float32": 100.0, "float64": 50.0}, gflops_basis="test")
  tier = registry.Tier("smoke", lambda: None, host_hardware, 100.0, "doc")
  assert preflight.runtime(tier, "float64", CPU_MACHINE, None, compute=preflight.HOST).scale == pytest.approx(1.0)
  assert preflight.runtime(tier, "float64", CPU_MACHINE, None).scale == pytest.approx(10.0)
  blessing = {"run_id": "r", "commit": "abc", "wall_time_s": 100.0,
              "fingerprint": {"matmul_gflops": {"float64": 500.0}, "host_matmul_gflops": {"float64": 25.0}}}
  host = preflight.runtime(tier, "float64", CPU_MACHINE, blessing, compute=preflight.HOST, seed_ratio=2.0)
  assert host.scale == pytest.approx(2.0 * 25.0 / 50.0) and "x2 for the seeds" in host.basis
  plan = preflight.make_plan(toy_experiment.EXPERIMENT, "smoke", n_seeds=12, machine=CPU_MACHINE,
                             references_dir="/nonexistent")
  assert plan.runtime.scale == pytest.approx(2 * preflight.CI_CPU_GFLOPS["float64"] / CPU_MACHINE.gflops)
