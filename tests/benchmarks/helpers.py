"""Shared pieces of the experiment tests: a tiny tier run in process, the real CIFAR-10 mirror beside the repo."""
from __future__ import annotations

import dataclasses
import os

from harness import registry, runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXACT_MIRROR = os.path.join(os.path.dirname(REPO), "shared", "data", "cifar10-exact-subset")


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
