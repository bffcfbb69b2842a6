"""NNGP / NTK matrices as a distributed job: one element per tile, the tile files of `nets.kernel_tiled`'s cache.

`kernel_jobs(grids, work_dir=..., options=...)` computes every tile of several kernel matrices (all of a phase's
architectures, depths and seeds) not yet in `<work_dir>/<grid key>/` as ONE Beam pipeline (`pipeline.run_job`), so
a cluster is never idle waiting for one matrix's last tiles; `assemble(grid, work_dir)` then reads one matrix
back at a time. The key and the tile files are `kernel_tiled`'s (`nets.tiling.TileGrid`), so a local
`kernel_tiled(..., cache_dir=work_dir)` and a cluster job resume each other's work.
Memory: a worker holds the job's inputs (each distinct input array once) and one kernel call (`nets.tiling`
docstring); the assembly holds one result (n1 x n2 per kernel) and one tile.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from harness.distributed import pipeline, storage
from harness.nets import tiling


class KernelTileJob(pipeline.ElementJob):
  """Elements: (grid, i, j), tile (i, j) of grid number `grid` (the upper triangle of a symmetric kernel), stored as
  `<grid key>/tile_<i>_<j>.npz`."""

  def __init__(self, grids: Sequence[tiling.TileGrid]):
    self.grids = list(grids)

  def elements(self):
    return [(g, i, j) for g, grid in enumerate(self.grids) for i, j in grid.indices()]

  def file_name(self, element) -> str:
    g, i, j = element
    return f"{self.grids[g].key}/{self.grids[g].file_name(i, j)}"

  def compute(self, element) -> dict[str, np.ndarray]:
    g, i, j = element
    return self.grids[g].compute(i, j)


def kernel_jobs(grids: Sequence[tiling.TileGrid], *, work_dir: str,
                options: str | Sequence[str] | None = None) -> pipeline.JobSummary:
  """Every missing tile of `grids` in one pipeline; each grid's manifest written beside its tiles."""
  for grid in grids:
    manifest = storage.path(work_dir, grid.key, "manifest.json")
    if not manifest.exists():
      storage.write_bytes(manifest, json.dumps(grid.manifest(), indent=1).encode())
  return pipeline.run_job(KernelTileJob(grids), work_dir, options)


def assemble(grid: tiling.TileGrid, work_dir: str) -> dict[str, np.ndarray]:
  """{name: (n1, n2)} from the grid's stored tiles; RuntimeError naming a missing tile."""
  out = grid.empty()
  for i, j in grid.indices():
    tile = storage.read_npz(storage.path(work_dir, grid.key, grid.file_name(i, j)), grid.get)
    if tile is None:
      raise RuntimeError(f"tile ({i}, {j}) of {storage.path(work_dir, grid.key)} is missing or unreadable")
    grid.place(out, i, j, tile)
  return out


def kernel_job(spec, x1: np.ndarray, x2: np.ndarray | None = None, get: str | Sequence[str] = tiling.KERNELS,
               dtype: str = "float64", tile_size: int = tiling.DEFAULT_TILE_SIZE, *, work_dir: str,
               options: str | Sequence[str] | None = None
               ) -> tuple[dict[str, np.ndarray] | np.ndarray, pipeline.JobSummary]:
  """`spec.kernel(x1, x2, get, dtype)` from tiles computed on Beam; returns (kernels as `spec.kernel` returns them,
  the job's summary). `options`: Beam pipeline options (module `pipeline`)."""
  grid = tiling.TileGrid.make(spec, x1, x2, get, dtype, tile_size)
  summary = kernel_jobs([grid], work_dir=work_dir, options=options)
  out = assemble(grid, work_dir)
  return (out[get] if isinstance(get, str) else out), summary
