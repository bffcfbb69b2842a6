"""What an experiment's `run(config, ctx)` sees: seeds, precision, datasets, and where to put metrics."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from harness.families import Family, LabelError, MetricView
from harness.metrics import Metric


class RunContext:
  """Collects the metrics, curves, phase timings and dataset records of one run.

  Metrics are raw values of declared families: `record(FAMILY, value, seed=s, **labels)` once per seed (or
  once without a seed for a deterministic quantity). `families`: the experiment's families (None: any), so
  recording an undeclared family fails at once.
  """

  def __init__(self, seeds: Sequence[int], dtype: str, mirrors: str | None = None, verbose: bool = True,
               families: Iterable[Family] | None = None):
    self.families = None if families is None else tuple(families)
    self.seeds = tuple(int(s) for s in seeds)
    self.dtype = dtype
    self.mirrors = mirrors
    self.verbose = verbose
    self.metrics: dict[str, Metric] = {}
    self.curves: dict[str, dict[str, Any]] = {}
    self.phases: dict[str, float] = {}
    self.datasets: list[dict[str, Any]] = []
    self.notes: dict[str, Any] = {}

  # -- metrics ---------------------------------------------------------------------------------
  def record(self, family: Family, value: float, seed: int | None = None, **labels: Any) -> str:
    """Records one value of the family's metric with these labels; returns the metric's name."""
    if self.families is not None and not any(family is f for f in self.families):
      raise LabelError(f"family {family.template!r} is not declared by the experiment")
    name = family.name(**labels)
    self._add(name, value, seed, family.unit)
    return name

  def view(self, *families: Family) -> MetricView:
    """The metrics recorded so far, read through families (a slope over points recorded earlier, say)."""
    return MetricView(self.metrics, families or None)

  def _add(self, name: str, value: float, seed: int | None, unit: str) -> None:
    entry = self.metrics.setdefault(name, Metric(values=[], seeds=[], unit=unit))
    if seed is not None and seed in entry.seeds:
      raise ValueError(f"metric {name!r} already has a value for seed {seed}")
    if seed is None and entry.values:
      raise ValueError(f"deterministic metric {name!r} set twice")
    entry.values.append(float(value))
    entry.seeds.append(None if seed is None else int(seed))

  def curve(self, name: str, x: Sequence[float], y: Sequence[float], seed: int | None = None,
            x_label: str = "x", y_label: str = "y") -> None:
    """A curve (e.g. loss vs step); several seeds of one curve share `name`."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
      raise ValueError(f"curve {name!r}: x and y must be 1-D of equal length")
    entry = self.curves.setdefault(name, {"x_label": x_label, "y_label": y_label, "series": []})
    entry["series"].append({"seed": seed, "x": x.tolist(), "y": y.tolist()})

  def note(self, key: str, value: Any) -> None:
    """Anything worth keeping that is not a metric (a chosen regularizer, a fitted constant)."""
    self.notes[key] = value

  # -- datasets --------------------------------------------------------------------------------
  def load_dataset(self, name: str, **kwargs):
    """harness.data.load with this run's mirrors; records the dataset id, source and checksum."""
    from harness import data  # imported lazily: experiments without data need no TFDS import
    split = data.load(name, mirrors=self.mirrors, **kwargs)
    self.record_dataset(data.describe(split))
    return split

  def record_dataset(self, description: dict[str, Any]) -> None:
    if description not in self.datasets:
      self.datasets.append(description)

  # -- time and progress -----------------------------------------------------------------------
  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    """Times a phase of the run (wall seconds, summed if entered twice)."""
    if self.verbose:
      print(f"[{name}]", flush=True)
    start = time.perf_counter()
    try:
      yield
    finally:
      self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - start
