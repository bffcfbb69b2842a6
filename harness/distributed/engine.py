"""Where a run computes its kernel matrices and sweep points: this process (`local`) or Apache Beam (`beam`).

`python -m harness run ... --engine=beam --pipeline_options="..." --work_dir=PATH` (flags in harness/cli.py)
reaches the experiment as `ctx.engine`; experiments call `ctx.engine.kernels(...)` instead of `nets.kernel_tiled`, and
`ctx.engine.map(function, points)` for independent (width, seed, ...) points of a sweep.
`work_dir` (any `etils.epath` path for Beam; local for `local`) keeps finished tiles, so a rerun of a killed
run resumes; without it each kernel's tiles live in a temporary folder (local: not cached).
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import tempfile
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from harness.distributed import storage

ENGINES = ("local", "beam")


# On one host the DirectRunner in this process is the fastest: XLA already spreads a tile over every core, while each
# worker process pays for importing TensorFlow and compiling again (docs/performance.md, "Kernel tiles on Beam").
DEFAULT_BEAM_OPTIONS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"


@dataclasses.dataclass(frozen=True)
class Engine:
  kind: str = "local"
  pipeline_options: str | None = None   # beam: Beam pipeline options (default: DEFAULT_BEAM_OPTIONS)
  work_dir: str | None = None
  devices: tuple | None = None   # local: the devices tiles go to (None: the backend's; the runner sets --strategy's)

  def __post_init__(self):
    if self.kind not in ENGINES:
      raise ValueError(f"engine must be one of {ENGINES}, got {self.kind!r}")
    if self.kind == "local" and self.pipeline_options:
      raise ValueError("pipeline options need --engine=beam")
    remote = self.work_dir is not None and "://" in self.work_dir
    if self.kind == "local" and remote:
      raise ValueError(f"--work_dir={self.work_dir}: the local engine keeps tiles on a local path; remote storage "
                       "needs --engine=beam")
    if self.kind == "beam":
      if importlib.util.find_spec("apache_beam") is None:
        raise ValueError("--engine=beam needs apache-beam: pip install -e '.[dist]' (make setup installs it)")
      if not self.pipeline_options_say_direct() and not remote:
        raise ValueError("a cluster runner needs --work_dir on storage every worker reaches (gs://, s3://, hdfs://): "
                         "workers cannot write to this machine's disk")

  def pipeline_options_say_direct(self) -> bool:
    """Whether the pipeline runs on this machine (the DirectRunner, Beam's default), so local folders serve."""
    from harness.distributed import pipeline  # pylint: disable=import-outside-toplevel
    options = pipeline.pipeline_options(self.beam_options)   # imports Beam quietly
    from apache_beam.options.pipeline_options import StandardOptions  # pylint: disable=import-outside-toplevel
    runner = options.view_as(StandardOptions).runner
    return runner in (None, "DirectRunner", "direct", "BundleBasedDirectRunner", "SwitchingDirectRunner")

  @property
  def beam_options(self) -> str | None:
    """The pipeline options Beam runs with (None for the local engine)."""
    return (self.pipeline_options or DEFAULT_BEAM_OPTIONS) if self.kind == "beam" else None

  def describe(self) -> dict:
    return {"kind": self.kind, "pipeline_options": self.beam_options, "work_dir": self.work_dir}

  def kernels(self, requests: Sequence[tuple], get: Sequence[str], dtype: str, tile_size: int,
              progress: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """`spec.kernel(x1, x2, get, dtype)` for each (spec, x1, x2) of `requests`, in order, one result at a time.

    beam: every tile of every request is computed first, as one pipeline; then each matrix is assembled when the
    iteration reaches it (memory: one result). local: each is computed when reached (`nets.kernel_tiled`)."""
    from harness import nets  # pylint: disable=import-outside-toplevel
    if self.kind == "local":
      for spec, x1, x2 in requests:
        yield nets.kernel_tiled(spec, x1, x2, get=get, dtype=dtype, tile_size=tile_size, progress=progress,
                                cache_dir=self.work_dir, devices=self.devices)
      return
    from harness.distributed import kernels  # pylint: disable=import-outside-toplevel
    from harness.nets import tiling  # pylint: disable=import-outside-toplevel
    grids = [tiling.TileGrid.make(spec, x1, x2, get, dtype, tile_size) for spec, x1, x2 in requests]
    with contextlib.ExitStack() as stack:
      work_dir = self.work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-tiles-"))
      kernels.kernel_jobs(grids, work_dir=work_dir, options=self.beam_options)
      for grid in grids:
        yield kernels.assemble(grid, work_dir)

  def map(self, function: Callable[..., Mapping[str, np.ndarray]], points: Sequence[Mapping[str, object]],
          on_point: Callable[[], None] | None = None) -> list[dict[str, np.ndarray]]:
    """[function(**point) for point in points] as {name: array} dicts, in order: on Beam one element a point
    (`sweeps.PointJob`; stored under `<work_dir>/points/<job key>/`, so a rerun skips finished points), locally one
    call after another. `function`: module-level, or a functools.partial of one over picklable arguments.
    `on_point()` is called after each point computed here (a run's `ctx.counter(...).advance`)."""
    from harness.distributed import pipeline, sweeps  # pylint: disable=import-outside-toplevel
    job = sweeps.PointJob(function, points)
    if self.kind == "local":
      results = []
      for point in job.elements():
        results.append(job.compute(point))
        if on_point is not None:
          on_point()
      return results
    with contextlib.ExitStack() as stack:
      work_dir = self.work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="harness-points-"))
      folder = str(storage.path(work_dir, "points", job.key()))
      pipeline.run_job(job, folder, self.beam_options)
      stored = pipeline.load(job, folder)
      return [stored[point] for point in job.elements()]

  def kernel(self, spec, x1: np.ndarray, x2: np.ndarray | None, get: Sequence[str], dtype: str, tile_size: int,
             progress: bool = False) -> dict[str, np.ndarray]:
    """`spec.kernel(x1, x2, get, dtype)` in tiles of `tile_size`, on this engine."""
    return next(iter(self.kernels([(spec, x1, x2)], get, dtype, tile_size, progress)))
