"""NNGP / NTK matrices as a distributed job: one element per tile, the tile files of `nets.kernel_tiled`'s cache.

`kernel_job(spec, x1, x2, work_dir=..., options=...)` computes the tiles not yet in `<work_dir>/<key>/` on Beam
(`pipeline.run_job`) and assembles them; the key and the tile files are `kernel_tiled`'s (`nets.tiling.TileGrid`),
so a local `kernel_tiled(..., cache_dir=work_dir)` and a cluster job resume each other's work.
Memory: a worker holds the inputs and one kernel call (`nets.tiling` docstring); the assembly holds the result
(n1 x n2 per kernel, in memory or as .npy memmaps with `memmap_dir`) and one tile.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from harness.distributed import pipeline, storage
from harness.nets import tiling


class KernelTileJob(pipeline.ElementJob):
  """Elements: (i, j) tiles of a `TileGrid` (the upper triangle for a symmetric kernel)."""

  def __init__(self, grid: tiling.TileGrid):
    self.grid = grid

  def elements(self):
    return self.grid.indices()

  def file_name(self, element) -> str:
    return self.grid.file_name(*element)

  def compute(self, element) -> dict[str, np.ndarray]:
    return self.grid.compute(*element)


def kernel_job(spec, x1: np.ndarray, x2: np.ndarray | None = None, get: str | Sequence[str] = tiling.KERNELS,
               dtype: str = "float64", tile_size: int = tiling.DEFAULT_TILE_SIZE, *, work_dir: str,
               options: str | Sequence[str] | None = None, memmap_dir: str | None = None
               ) -> tuple[dict[str, np.ndarray] | np.ndarray, pipeline.JobSummary]:
  """`spec.kernel(x1, x2, get, dtype)` from tiles computed on Beam; returns (kernels as `spec.kernel` returns them,
  the job's summary). `options`: Beam pipeline options (module `pipeline`)."""
  grid = tiling.TileGrid.make(spec, x1, x2, get, dtype, tile_size)
  folder = storage.path(work_dir, grid.key)
  folder.mkdir(parents=True, exist_ok=True)
  manifest = folder / "manifest.json"
  if not manifest.exists():
    storage.write_bytes(manifest, json.dumps(grid.manifest(), indent=1).encode())
  job = KernelTileJob(grid)
  summary = pipeline.run_job(job, str(folder), options)
  out = grid.empty(memmap_dir)
  for element in job.elements():
    tile = storage.read_npz(folder / job.file_name(element), grid.get)
    if tile is None:
      raise RuntimeError(f"tile {element} of {folder} is missing after the pipeline ran")
    grid.place(out, *element, tile)
  return (out[get] if isinstance(get, str) else out), summary
