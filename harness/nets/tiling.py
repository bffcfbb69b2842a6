"""Large NNGP / NTK matrices in bounded memory: tiles, resumable on-disk cache, several devices.

`kernel_tiled(spec, x1, x2)` splits the (n1, n2) kernel into tile_size x tile_size blocks and calls
`spec.kernel` on each pair of input blocks. The last block of each side is padded (edge rows repeated,
their entries dropped) to the full tile shape so every call has the same shapes and compiles once; a side
with fewer than tile_size inputs is one block of its own length, never padded. For
the train-train case (x2 None) only the tiles on and above the diagonal are computed and the lower
triangle is mirrored, nearly halving the work.

Memory: besides the (n1, n2) result arrays (8 bytes an entry in float64; pass tile_size small enough
that one `spec.kernel(tile_size inputs, tile_size inputs)` call fits), the peak is that of one kernel
call per device: O(tile_size^2 x per-pair intermediates), e.g. tile_size^2 x (H W)^2 floats for a CNN
layer without pooling (NT stax convention), independent of n1 and n2.

Resuming: with `cache_dir`, every finished tile is written atomically (`harness.atomic`: temporary file,
fsync, os.replace) to `cache_dir/<key>/tile_<i>_<j>.npz`, where the key hashes the spec description, the
input arrays, get, dtype and tile size. A rerun after a crash or kill loads finished tiles and computes only the rest.

Devices: tiles go round-robin to every visible accelerator (or every logical CPU device when there is no
accelerator) of the active Keras backend, one worker thread per device; the backend modules say which
devices exist and how to place work on one (`devices()`, `device_scope(device)`).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import queue
import threading
from typing import Callable, Iterable, Sequence

import keras
import numpy as np

from harness import atomic
from harness.distributed import storage
from harness.nets import _batching
from harness.nets import backends

DEFAULT_TILE_SIZE = 256
KERNELS = _batching.KERNELS


def _describe(spec) -> str:
  """A stable text of the architecture for the cache key (the spec's own description when it has one)."""
  describe = getattr(spec, "describe", None)
  return describe() if callable(describe) else repr(spec)


def _hash_array(digest, x: np.ndarray) -> None:
  x = np.ascontiguousarray(x)
  digest.update(f"{x.dtype.str}{x.shape}".encode())
  digest.update(x.tobytes())


def cache_key(spec, x1: np.ndarray, x2: np.ndarray | None, get: tuple[str, ...], dtype: str,
              tile_size: int) -> str:
  """sha256 over spec description, inputs, get, dtype and tile size (first 20 hex digits)."""
  digest = hashlib.sha256()
  digest.update(_describe(spec).encode())
  digest.update(f"|get={','.join(get)}|dtype={dtype}|tile={tile_size}|".encode())
  _hash_array(digest, x1)
  if x2 is None:
    digest.update(b"|x2=None|")
  else:
    _hash_array(digest, x2)
  return digest.hexdigest()[:20]


def tile_indices(n1: int, n2: int | None, tile_size: int) -> list[tuple[int, int]]:
  """(row tile, column tile) pairs to compute: all of them, or the upper triangle when n2 is None."""
  rows = len(_batching.blocks(n1, tile_size))
  if n2 is None:
    return [(i, j) for i in range(rows) for j in range(i, rows)]
  return [(i, j) for i in range(rows) for j in range(len(_batching.blocks(n2, tile_size)))]


@dataclasses.dataclass(frozen=True, eq=False)
class TileGrid:
  """The tiles of one kernel matrix: which to compute, each one's padded inputs, its file and its place.

  Shared by `kernel_tiled` and the distributed job (`harness.distributed`), so both read and write the same
  tile files (`<cache_dir>/<key>/tile_<i>_<j>.npz`, each the full padded tile) and either resumes the other's.
  """
  spec: object
  x1: np.ndarray
  x2: np.ndarray | None
  get: tuple[str, ...]
  dtype: str
  tile_size: int

  @classmethod
  def make(cls, spec, x1, x2, get, dtype: str, tile_size: int) -> "TileGrid":
    if tile_size < 1:
      raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    return cls(spec, np.asarray(x1), None if x2 is None else np.asarray(x2), _batching.canonical_get(get), dtype,
               int(tile_size))

  @property
  def symmetric(self) -> bool:
    return self.x2 is None

  @property
  def shape(self) -> tuple[int, int]:
    return self.x1.shape[0], (self.x1 if self.symmetric else self.x2).shape[0]

  @functools.cached_property
  def key(self) -> str:
    return cache_key(self.spec, self.x1, self.x2, self.get, self.dtype, self.tile_size)

  @functools.cached_property
  def _sides(self):
    # A side shorter than a tile is one unpadded block: padding 250 inputs to a 512 tile would do 4x the work.
    n1, n2 = self.shape
    row_tile, col_tile = min(self.tile_size, n1), min(self.tile_size, n2)
    return row_tile, col_tile, _batching.blocks(n1, row_tile), _batching.blocks(n2, col_tile)

  def indices(self) -> list[tuple[int, int]]:
    n1, n2 = self.shape
    return tile_indices(n1, None if self.symmetric else n2, self.tile_size)

  @staticmethod
  def file_name(i: int, j: int) -> str:
    return f"tile_{i}_{j}.npz"

  def manifest(self) -> dict:
    return {"spec": _describe(self.spec), "x1_shape": list(self.x1.shape),
            "x2_shape": None if self.symmetric else list(self.x2.shape), "get": list(self.get), "dtype": self.dtype,
            "tile_size": self.tile_size, "tiles": len(self.indices())}

  def compute(self, i: int, j: int) -> dict[str, np.ndarray]:
    """Tile (i, j): `spec.kernel` on the padded row block i and column block j (the padded tile)."""
    row_tile, col_tile, rows, cols = self._sides
    a = _batching.padded(self.x1, *rows[i], row_tile)
    b = _batching.padded(self.x1 if self.symmetric else self.x2, *cols[j], col_tile)
    result = self.spec.kernel(a, b, get=self.get, dtype=self.dtype)
    return {g: np.asarray(result[g]) for g in self.get}

  def empty(self) -> dict[str, np.ndarray]:
    """The (n1, n2) result arrays."""
    return {g: np.empty(self.shape, dtype=np.dtype(self.dtype)) for g in self.get}

  def place(self, out: dict[str, np.ndarray], i: int, j: int, tile: dict[str, np.ndarray]) -> None:
    """Writes tile (i, j) into `out` (and its mirror image below the diagonal when symmetric)."""
    _, _, rows, cols = self._sides
    (r0, r1), (c0, c1) = rows[i], cols[j]
    for g in self.get:
      block = np.asarray(tile[g])[:r1 - r0, :c1 - c0]
      out[g][r0:r1, c0:c1] = block
      if self.symmetric and i != j:
        out[g][c0:c1, r0:r1] = block.T


def kernel_tiled(spec, x1: np.ndarray, x2: np.ndarray | None = None, get: str | Sequence[str] = KERNELS,
                 dtype: str = "float64", tile_size: int = DEFAULT_TILE_SIZE, cache_dir: str | None = None,
                 progress: bool = True, devices: Sequence | None = None,
                 on_tile: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray] | np.ndarray:
  """`spec.kernel(x1, x2, get, dtype)` computed tile by tile (module docstring).

  Returns the same as `spec.kernel`: a dict {name: (n1, n2) array}, or the bare array when `get` is a
  string. `devices`: override the backend's device list (e.g. one device to force serial work).
  `on_tile(i, j)` is called after tile (i, j) is stored (and cached); an exception from it stops the run
  with all tiles finished so far kept in the cache.
  """
  grid = TileGrid.make(spec, x1, x2, get, dtype, tile_size)
  todo = grid.indices()
  out = grid.empty()

  tile_dir = None
  if cache_dir is not None:
    tile_dir = os.path.join(cache_dir, grid.key)
    os.makedirs(tile_dir, exist_ok=True)
    manifest = os.path.join(tile_dir, "manifest.json")
    if not os.path.exists(manifest):
      atomic.write_text_atomic(manifest, json.dumps(grid.manifest(), indent=1))

  def tile_path(i: int, j: int) -> str | None:
    return None if tile_dir is None else os.path.join(tile_dir, grid.file_name(i, j))

  remaining = []
  for i, j in todo:
    path = tile_path(i, j)
    # an unreadable or foreign file is recomputed
    cached = storage.read_npz(path, grid.get) if path is not None and os.path.exists(path) else None
    if cached is None:
      remaining.append((i, j))
    else:
      grid.place(out, i, j, cached)

  bar = keras.utils.Progbar(len(todo), unit_name="tile") if progress else None
  if bar is not None:
    bar.update(len(todo) - len(remaining))

  def finish(i: int, j: int, tile: dict[str, np.ndarray]) -> None:
    path = tile_path(i, j)
    if path is not None:
      storage.write_npz(path, tile)
    grid.place(out, i, j, tile)
    if bar is not None:
      bar.add(1)
    if on_tile is not None:
      on_tile(i, j)

  backend = backends.current()
  device_list = list(backend.devices() if devices is None else devices)
  if len(device_list) <= 1 or len(remaining) <= 1:
    for i, j in remaining:
      with backend.device_scope(device_list[0]) if device_list else contextlib.nullcontext():
        tile = grid.compute(i, j)
      finish(i, j, tile)
  else:
    _run_on_devices(device_list, remaining, grid.compute, finish)

  if isinstance(get, str):
    return out[get]
  return out


def _run_on_devices(device_list: list, remaining: Iterable[tuple[int, int]],
                    compute: Callable[[int, int], dict], finish: Callable[[int, int, dict], None]) -> None:
  """One worker thread per device computes tiles; the calling thread stores them (and runs callbacks)."""
  backend = backends.current()
  free = queue.SimpleQueue()
  for device in device_list:
    free.put(device)
  local = threading.local()

  def bind_device() -> None:
    local.device = free.get()

  def task(i: int, j: int) -> tuple[int, int, dict]:
    with backend.device_scope(local.device):
      return i, j, compute(i, j)

  with concurrent.futures.ThreadPoolExecutor(len(device_list), initializer=bind_device) as pool:
    futures = [pool.submit(task, i, j) for i, j in remaining]
    try:
      for future in concurrent.futures.as_completed(futures):
        finish(*future.result())
    except BaseException:
      for future in futures:
        future.cancel()
      raise
