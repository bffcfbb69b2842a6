"""Experiments and their tiers, declared once.

An experiment module in `benchmarks/` defines `EXPERIMENT = Experiment(...)`: its name, the papers it
reproduces (arXiv ids), the claims it checks, its tiers, and a `run(config, ctx)` function that computes
metrics through the `RunContext` (it never writes files, parses flags or compares against references).

A tier is a function returning the experiment's config, decorated with `@tier(...)`; its docstring
states the command, the hardware, the expected runtime and the expected result (checked here), e.g.

    @registry.tier("smoke", hardware="2 CPU cores", expected_runtime_s=60)
    def smoke() -> Config:
      '''Command: python -m harness run --experiment=X --tier=smoke
      Hardware: 2 CPU cores.  Expected runtime: 60 s.  Expected result: every claim passes.'''
      return Config(seeds=(0, 1), n_train=256)
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
from typing import Any, Callable, Mapping, Sequence

from harness.claims import Claim
from harness.errors import HarnessError

TIER_NAMES = ("smoke", "small", "paper")
DOC_FIELDS = ("Command:", "Hardware:", "Expected runtime:", "Expected result:")
# Experiment modules shipped with the suite; HARNESS_EXPERIMENT_MODULES adds more (comma-separated).
EXPERIMENT_MODULES = (
    "benchmarks.commutativity",
    "benchmarks.pooling",
    "benchmarks.finite_vs_infinite",
    "benchmarks.width_consistency",
)
EXTRA_MODULES_ENV = "HARNESS_EXPERIMENT_MODULES"


@dataclasses.dataclass(frozen=True)
class Tier:
  name: str
  make_config: Callable[[], Any]
  hardware: str
  expected_runtime_s: float
  doc: str

  def config(self) -> Any:
    return self.make_config()


def tier(name: str, *, hardware: str, expected_runtime_s: float) -> Callable[[Callable[[], Any]], Tier]:
  """Turns a config function into a Tier; its docstring must give the four DOC_FIELDS."""
  if name not in TIER_NAMES:
    raise ValueError(f"tier name must be one of {TIER_NAMES}, got {name!r}")

  def wrap(fn: Callable[[], Any]) -> Tier:
    doc = " ".join((fn.__doc__ or "").split())
    missing = [field for field in DOC_FIELDS if field not in doc]
    if missing:
      raise ValueError(f"tier {fn.__qualname__} docstring lacks {missing}")
    return Tier(name, fn, hardware, float(expected_runtime_s), (fn.__doc__ or "").strip())

  return wrap


@dataclasses.dataclass(frozen=True)
class Paper:
  arxiv: str
  title: str

  def __post_init__(self):
    if not re.fullmatch(r"\d{4}\.\d{4,5}", self.arxiv):
      raise ValueError(f"not an arXiv id: {self.arxiv!r}")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One canonical experiment.

  run(config, ctx) computes metrics via ctx.metric / ctx.curve. `reference_rules` maps fnmatch patterns
  of metric names to the tolerance rule `bless` uses for them (see harness.references); `figures`,
  if given, maps a results record to {name: matplotlib Figure} for reports.
  """
  name: str
  description: str
  papers: tuple[Paper, ...]
  claims: tuple[Claim, ...]
  tiers: tuple[Tier, ...]
  run: Callable[[Any, Any], None]
  reference_rules: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  figures: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None

  def __post_init__(self):
    names = [t.name for t in self.tiers]
    if len(set(names)) != len(names):
      raise ValueError(f"{self.name}: duplicate tiers {names}")
    claim_names = [c.name for c in self.claims]
    if len(set(claim_names)) != len(claim_names):
      raise ValueError(f"{self.name}: duplicate claims {claim_names}")

  def tier(self, name: str) -> Tier:
    for t in self.tiers:
      if t.name == name:
        return t
    raise HarnessError(f"experiment {self.name!r} has no tier {name!r}; tiers: {', '.join(t.name for t in self.tiers)}")


_REGISTRY: dict[str, Experiment] = {}
_LOADED = False


def register(experiment: Experiment) -> Experiment:
  if experiment.name in _REGISTRY and _REGISTRY[experiment.name] is not experiment:
    raise ValueError(f"experiment {experiment.name!r} registered twice")
  _REGISTRY[experiment.name] = experiment
  return experiment


def unregister(name: str) -> None:
  _REGISTRY.pop(name, None)


def _module_names() -> Sequence[str]:
  extra = [m.strip() for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if m.strip()]
  return list(EXPERIMENT_MODULES) + extra


def load_all() -> dict[str, Experiment]:
  """Imports the experiment modules (those not written yet are skipped) and returns the registry."""
  global _LOADED
  if not _LOADED:
    for module_name in _module_names():
      try:
        module = importlib.import_module(module_name)
      except ModuleNotFoundError as e:
        if e.name is not None and module_name.startswith(e.name):
          continue  # this experiment is not part of the suite yet
        raise
      experiment = getattr(module, "EXPERIMENT", None)
      if not isinstance(experiment, Experiment):
        raise TypeError(f"{module_name} defines no EXPERIMENT")
      register(experiment)
    _LOADED = True
  return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
  experiments = load_all()
  if name not in experiments:
    known = ", ".join(experiments) or "none"
    raise HarnessError(f"unknown experiment {name!r}; registered: {known}")
  return experiments[name]
