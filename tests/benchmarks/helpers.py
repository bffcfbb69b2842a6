"""Shared pieces of the experiment tests: a tiny tier run in process or through the CLI, the real CIFAR-10 mirror
beside the repo."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

from harness import registry, runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXACT_MIRROR = os.path.join(os.path.dirname(REPO), "shared", "data", "cifar10-exact-subset")
# what a library may write to stderr that the user can do nothing about (a run's stderr must hold none of it)
LIBRARY_NOISE = ("AutoGraph", "WARNING", "Warning:", "W0000", "I0000", "Fix that!", "retracing")


def run_tiny(experiment: registry.Experiment, tier, output_dir: str, name: str, mirrors: str | None = None,
             engine=None) -> dict:
  """Runs `tier` (a registry.tier-decorated config function) of a copy of `experiment` registered as `name`,
  through the in-process runner (as `python -m harness run` does; `engine`: --engine's); returns the record."""
  registry.register(dataclasses.replace(experiment, name=name, tiers=(tier,)))
  try:
    _, record = runner.run(name, tier.name, output_dir=output_dir, verbose=False, mirrors=mirrors, engine=engine)
  finally:
    registry.unregister(name)
  return record


def tiny_experiment(experiment: registry.Experiment, tier) -> registry.Experiment:
  """`experiment` with only `tier` (its tests' tiny tier), named `<name>_tiny`: for CLI tests in a subprocess, which
  register it through HARNESS_EXPERIMENT_MODULES=tests.benchmarks.tiny_<name>."""
  return dataclasses.replace(experiment, name=f"{experiment.name}_tiny", tiers=(tier,))


def run_tiny_cli(experiment_name: str, output_dir: str, mirrors: str | None = None) -> tuple[int, dict]:
  """`python -m harness run --experiment=<name>_tiny --tier=smoke` in a subprocess, as a user types it, the tiny
  experiment registered from tests/benchmarks/tiny_<name>.py; asserts that stderr is empty (no library warnings the
  user can do nothing about) and returns (exit status, the run's record)."""
  env = dict(os.environ, HARNESS_EXPERIMENT_MODULES=f"tests.benchmarks.tiny_{experiment_name}")
  env.pop("HARNESS_MIRRORS", None)
  if mirrors:
    env["HARNESS_MIRRORS"] = mirrors
  result = subprocess.run([sys.executable, "-m", "harness", "run", f"--experiment={experiment_name}_tiny",
                           "--tier=smoke", f"--output_dir={output_dir}", "--quiet"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode in (0, 1), result.stdout + result.stderr   # 1: a claim failed; 2 or a crash: not a run
  assert not [line for line in result.stderr.splitlines() if any(n in line for n in LIBRARY_NOISE)], result.stderr
  assert result.stderr == ""
  with open(os.path.join(output_dir, "results.json"), encoding="utf-8") as f:
    return result.returncode, json.load(f)
