"""What an experiment's `run(config, ctx)` sees: seeds, precision, datasets, and where to put metrics."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, TypeVar

import numpy as np

from harness import distributed
from harness.families import Family, LabelError, MetricView
from harness.metrics import Metric

if TYPE_CHECKING:
  from harness import preflight

T = TypeVar("T")


class RunContext:
  """Collects the metrics, curves, phase timings and dataset records of one run.

  Metrics are raw values of declared families: `record(FAMILY, value, seed=s, **labels)` once per seed (or
  once without a seed for a deterministic quantity). `families`: the experiment's families (None: any), so
  recording an undeclared family fails at once. `needs` (harness/preflight.py): the phases and dataset reads the
  pre-flight checked; a phase or a read beyond them is the experiment's bug (UndeclaredNeed).
  Output: `verbose` prints one line per phase when it ends (with `progress`, also a line when it starts, with the
  time the pre-flight expects, and the bars of `progress(...)` loops with their time estimates).
  """

  def __init__(self, seeds: Sequence[int], dtype: str, mirrors: str | None = None, verbose: bool = True,
               families: Iterable[Family] | None = None, needs: "preflight.Needs | None" = None,
               expected_phase_s: Mapping[str, float] | None = None, progress: bool | None = None,
               engine: "distributed.Engine | None" = None):
    self.families = None if families is None else tuple(families)
    self.engine = engine or distributed.Engine()  # where kernel matrices are computed: ctx.engine.kernel(...)
    self.needs = needs  # None: anything goes (tests); else phases and data reads must be declared in it
    self.expected_phase_s = dict(expected_phase_s or {})
    self.progress_bars = verbose if progress is None else progress
    self._phase: str | None = None
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
  def load_dataset(self, name: str, split: str = "train", **kwargs):
    """harness.data.load with this run's mirrors; records the dataset id, source and checksum."""
    from harness import data  # imported lazily: experiments without data need no TFDS import
    pool = kwargs.get("pool")
    self._check_read(name, split, pool if pool is not None else data.catalog.get(name).split_sizes.get(split, 0))
    loaded = data.load(name, split=split, mirrors=self.mirrors, **kwargs)
    self.record_dataset(data.describe(loaded))
    return loaded

  def stream(self, name: str, split: str, batch_size: int, *, num_examples: int, start: int = 0, **kwargs):
    """harness.data.stream with this run's mirrors (the caller records `describe()` once it has served)."""
    from harness import data
    self._check_read(name, split, start + num_examples)
    return data.stream(name, split, batch_size, num_examples=num_examples, start=start, mirrors=self.mirrors,
                       **kwargs)

  def _check_read(self, name: str, split: str, examples: int) -> None:
    if self.needs is None:
      return
    limit = self.needs.data_limit(name, split, self._phase)
    if limit is None or examples > limit:
      declared = "not declared for it" if limit is None else f"declared {limit}"
      raise UndeclaredNeed(f"phase {self._phase!r} reads {examples} examples of {name} {split}, {declared} in the "
                           f"experiment's needs (harness/preflight.py): the pre-flight did not check this read")

  def record_dataset(self, description: dict[str, Any]) -> None:
    if description not in self.datasets:
      self.datasets.append(description)

  # -- time and progress -----------------------------------------------------------------------
  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    """Times a phase of the run (wall seconds, summed if entered twice)."""
    if self.needs is not None and name not in self.needs.phases:
      raise UndeclaredNeed(f"phase {name!r} is not among the experiment's declared phases {self.needs.phases}")
    if self.verbose and self.progress_bars:
      expected = self.expected_phase_s.get(name)
      from harness.preflight import duration  # pylint: disable=import-outside-toplevel
      print(f"[{name}]" + (f" expected about {duration(expected)}" if expected is not None else ""), flush=True)
    self._phase = name
    start = time.perf_counter()
    try:
      yield
    finally:
      elapsed = time.perf_counter() - start
      self.phases[name] = self.phases.get(name, 0.0) + elapsed
      self._phase = None
      if self.verbose:
        print(f"[{name}] done in {elapsed:.1f} s", flush=True)

  def progress(self, items: Iterable[T], total: int | None = None) -> Iterator[T]:
    """Yields `items`, drawing a Keras progress bar with a time estimate when progress output is on."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    counter = self.counter(len(items) if total is None else total)  # type: ignore[arg-type]
    for item in items:
      yield item
      counter.advance()

  def counter(self, total: int) -> "Counter":
    """A progress bar over `total` units of work of loops that `progress` cannot wrap (call `advance()` after
    each unit); draws nothing when progress output is off."""
    return Counter(total if self.progress_bars else 0)


class Counter:
  """Keras' progress bar (a time estimate from the mean time per unit so far), updated every half second on a
  terminal and every 30 s in a log."""

  def __init__(self, total: int):
    self.done = 0
    self._bar = None
    if total:
      import keras  # pylint: disable=import-outside-toplevel
      self._bar = keras.utils.Progbar(total, interval=0.5 if sys.stdout.isatty() else 30.0, unit_name="item")

  def advance(self, units: int = 1) -> None:
    self.done += units
    if self._bar is not None:
      self._bar.update(self.done)


class UndeclaredNeed(RuntimeError):
  """An experiment read data or entered a phase its `needs` did not declare (a bug in the experiment)."""
