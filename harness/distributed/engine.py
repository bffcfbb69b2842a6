"""Where a run computes its kernel matrices: this process (`local`) or an Apache Beam pipeline (`beam`).

`python -m harness run ... --engine=beam --pipeline_options="..." --work_dir=PATH` (flags in harness/cli.py)
reaches the experiment as `ctx.engine`; experiments call `ctx.engine.kernel(...)` instead of `nets.kernel_tiled`.
`work_dir` (any `etils.epath` path for Beam; local for `local`) keeps finished tiles, so a rerun of a killed
run resumes; without it each kernel's tiles live in a temporary folder (local: not cached).
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from typing import Iterator, Sequence

import numpy as np

ENGINES = ("local", "beam")


# On one host the DirectRunner in this process is the fastest: XLA already spreads a tile over every core, while each
# worker process pays for importing TensorFlow and compiling again (docs/performance.md, "Kernel tiles on Beam").
DEFAULT_BEAM_OPTIONS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"


def default_beam_options() -> str:
  return DEFAULT_BEAM_OPTIONS


@dataclasses.dataclass(frozen=True)
class Engine:
  kind: str = "local"
  pipeline_options: str | None = None   # beam: Beam pipeline options (default: default_beam_options())
  work_dir: str | None = None
  devices: tuple | None = None   # local: the devices tiles go to (None: the backend's; the runner sets --strategy's)

  def __post_init__(self):
    if self.kind not in ENGINES:
      raise ValueError(f"engine must be one of {ENGINES}, got {self.kind!r}")
    if self.kind == "local" and self.pipeline_options:
      raise ValueError("pipeline options need --engine=beam")

  def describe(self) -> dict:
    options = (self.pipeline_options or default_beam_options()) if self.kind == "beam" else None
    return {"kind": self.kind, "pipeline_options": options, "work_dir": self.work_dir}

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
      kernels.kernel_jobs(grids, work_dir=work_dir, options=self.pipeline_options or default_beam_options())
      for grid in grids:
        yield kernels.assemble(grid, work_dir)

  def kernel(self, spec, x1: np.ndarray, x2: np.ndarray | None, get: Sequence[str], dtype: str, tile_size: int,
             progress: bool = False) -> dict[str, np.ndarray]:
    """`spec.kernel(x1, x2, get, dtype)` in tiles of `tile_size`, on this engine."""
    return next(iter(self.kernels([(spec, x1, x2)], get, dtype, tile_size, progress)))
