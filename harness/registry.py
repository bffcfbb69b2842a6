"""Experiments and their tiers, declared once; experiments are discovered as folders of `benchmarks/`.

An experiment is a folder `benchmarks/<name>/` whose `experiment.py` defines `EXPERIMENT = Experiment(...)`:
its name (the folder's), the papers it reproduces (arXiv ids), the metric families it records, the claims it
checks over them, its tiers, and a `run(config, ctx)` function that records metrics through the `RunContext`
(it never writes files, parses flags or compares against references). Every folder of `benchmarks/` except
NOT_EXPERIMENTS is an experiment: a folder without `experiment.py` is an error, not skipped.
HARNESS_EXPERIMENT_MODULES adds modules defining EXPERIMENT (comma-separated; tests use it for a toy).

A tier is a function returning the experiment's config, decorated with `@tier(...)`, which states the
hardware it is sized for (a `preflight.Hardware`: accelerators, host memory, and the matmul throughput its runtime
refers to) and the expected runtime once; its docstring gives the command and the expected result, e.g.

    @registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
    def smoke() -> Config:
      '''Command: python -m harness run --experiment=X --tier=smoke
      Expected result: every claim passes.'''
      return Config(seeds=(0, 1), n_train=256)
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from typing import Any, Callable, Mapping, Sequence

from harness import families as families_lib
from harness import papers, preflight
from harness.claims import Claim
from harness.errors import HarnessError
from harness.families import Family

TIER_NAMES = ("smoke", "small", "paper")
DOC_FIELDS = ("Command:", "Expected result:")
BENCHMARKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
BENCHMARKS_PACKAGE = "benchmarks"
NOT_EXPERIMENTS = ("perf",)   # benchmarks/perf: the speed benchmarks (pytest-benchmark), not an experiment
EXTRA_MODULES_ENV = "HARNESS_EXPERIMENT_MODULES"


@dataclasses.dataclass(frozen=True)
class Tier:
  name: str
  make_config: Callable[[], Any]
  hardware: preflight.Hardware
  expected_runtime_s: float
  doc: str

  def config(self) -> Any:
    return self.make_config()

  def describe(self) -> str:
    """The docstring with the hardware and the expected runtime, as `list` prints them."""
    return f"Hardware: {self.hardware}. Expected runtime: {_seconds(self.expected_runtime_s)}.\n{self.doc}"


def _seconds(value: float) -> str:
  return f"{value:.0f} s" + (f" ({value / 3600:.1f} h)" if value >= 3600 else "")


def tier(name: str, *, hardware: preflight.Hardware, expected_runtime_s: float) -> Callable[[Callable[[], Any]], Tier]:
  """Turns a config function into a Tier; its docstring must give the DOC_FIELDS (and not a runtime:
  that is `expected_runtime_s`, written once)."""
  if name not in TIER_NAMES:
    raise ValueError(f"tier name must be one of {TIER_NAMES}, got {name!r}")
  if not isinstance(hardware, preflight.Hardware):
    raise TypeError(f"tier {name}: hardware must be a preflight.Hardware (e.g. preflight.CI_CPU), got {hardware!r}")

  def wrap(fn: Callable[[], Any]) -> Tier:
    doc = " ".join((fn.__doc__ or "").split())
    missing = [field for field in DOC_FIELDS if field not in doc]
    if missing:
      raise ValueError(f"tier {fn.__qualname__} docstring lacks {missing}")
    if "Expected runtime" in doc or "Hardware:" in doc:
      raise ValueError(f"tier {fn.__qualname__}: hardware and runtime go in @tier(...), not the docstring")
    return Tier(name, fn, hardware, float(expected_runtime_s), (fn.__doc__ or "").strip())

  return wrap


@dataclasses.dataclass(frozen=True)
class Paper:
  arxiv: str
  title: str

  def __post_init__(self):
    if not papers.is_arxiv_id(self.arxiv):
      raise ValueError(f"not an arXiv id: {self.arxiv!r}")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One canonical experiment.

  run(config, ctx) records metrics of `families` via ctx.record (and curves via ctx.curve); each family
  carries the tolerance rule `bless` gives its metrics (harness.references). Every claim may read only
  declared families, checked here, when the experiment is loaded. `needs(config, seeds)` states what a tier's
  run needs (phases, datasets and sizes, memory: harness/preflight.py), checked before its first phase.
  `figures`, if given, maps a results record to {name: matplotlib Figure} for reports. `theory_references`, if
  given, maps a tier's config to the reference entries with `theory` provenance (closed forms and their derivations) that
  `python -m harness theory` and `bless` write into that tier's reference file.
  """
  name: str
  description: str
  papers: tuple[Paper, ...]
  families: tuple[Family, ...]
  claims: tuple[Claim, ...]
  tiers: tuple[Tier, ...]
  run: Callable[[Any, Any], None]
  needs: preflight.NeedsFn
  figures: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
  theory_references: Callable[[Any], Sequence[Mapping[str, Any]]] | None = None

  def __post_init__(self):
    templates = [f.template for f in self.families]
    if len(set(templates)) != len(templates):
      raise ValueError(f"{self.name}: a family is declared twice: {templates}")
    for claim in self.claims:
      undeclared = [f.template for f in claim.families() if not any(f is g for g in self.families)]
      if undeclared:
        raise ValueError(f"{self.name}: claim {claim.name} reads undeclared famil(ies) {', '.join(undeclared)}")
    names = [t.name for t in self.tiers]
    if len(set(names)) != len(names):
      raise ValueError(f"{self.name}: duplicate tiers {names}")
    claim_names = [c.name for c in self.claims]
    if len(set(claim_names)) != len(claim_names):
      raise ValueError(f"{self.name}: duplicate claims {claim_names}")

  def family_of(self, metric_name: str) -> tuple[Family, dict[str, Any]] | None:
    """The declared family that writes `metric_name`, with its labels (None if none does)."""
    return families_lib.family_of(metric_name, self.families)

  def rule_for(self, metric_name: str, metrics: "Mapping[str, Any] | None" = None) -> Mapping[str, Any] | None:
    """The tolerance rule `bless` gives a new reference entry of this metric (None: not blessed); `metrics`,
    the blessed run's, for rounding bounds that read other metrics of the run."""
    found = self.family_of(metric_name)
    if found is None:
      return None
    view = None if metrics is None else families_lib.MetricView(metrics)
    return found[0].rule_for(found[1], view)

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


def experiment_modules() -> list[str]:
  """benchmarks.<folder>.experiment for every experiment folder, then HARNESS_EXPERIMENT_MODULES."""
  names = []
  for entry in sorted(os.listdir(BENCHMARKS_DIR)):
    folder = os.path.join(BENCHMARKS_DIR, entry)
    if entry in NOT_EXPERIMENTS or entry.startswith((".", "_")) or not os.path.isdir(folder):
      continue
    if not os.path.exists(os.path.join(folder, "experiment.py")):
      raise HarnessError(f"{folder} is an experiment folder without experiment.py")
    names.append(f"{BENCHMARKS_PACKAGE}.{entry}.experiment")
  extra = [m.strip() for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if m.strip()]
  return names + extra


def load_all() -> dict[str, Experiment]:
  """Imports every experiment module and returns the registry."""
  global _LOADED
  if not _LOADED:
    for module_name in experiment_modules():
      module = importlib.import_module(module_name)
      experiment = getattr(module, "EXPERIMENT", None)
      if not isinstance(experiment, Experiment):
        raise TypeError(f"{module_name} defines no EXPERIMENT")
      parts = module_name.split(".")
      if parts[0] == BENCHMARKS_PACKAGE and len(parts) == 3 and experiment.name != parts[1]:
        raise ValueError(f"{module_name}: experiment {experiment.name!r} must be named after its folder {parts[1]!r}")
      register(experiment)
    _LOADED = True
  return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Experiment:
  experiments = load_all()
  if name not in experiments:
    known = ", ".join(experiments) or "none"
    raise HarnessError(f"unknown experiment {name!r}; registered: {known}")
  return experiments[name]
