"""Splitting inputs into fixed-size blocks, and the `get` argument: shared by kernels, tiles and empirical NTKs.

Every compiled function here has fixed input shapes, so a short last block is padded by repeating its last row
(its outputs are dropped): one compile serves every block of a size.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

KERNELS = ("nngp", "ntk")


def canonical_get(get: str | Sequence[str], unique: bool = False) -> tuple[str, ...]:
  """`get` as a tuple of kernel names; ValueError if empty or naming others (or repeating one, with `unique`)."""
  names = (get,) if isinstance(get, str) else tuple(get)
  if not names or any(g not in KERNELS for g in names) or (unique and len(set(names)) != len(names)):
    raise ValueError(f"get must name some of {KERNELS}, got {get!r}")
  return names


def blocks(n: int, size: int) -> list[tuple[int, int]]:
  """[(start, stop)] covering range(n) in steps of `size` (the last one may be shorter)."""
  return [(start, min(start + size, n)) for start in range(0, n, size)]


def padded(x: np.ndarray, start: int, stop: int, size: int) -> np.ndarray:
  """x[start:stop] with its last row repeated up to `size` rows."""
  block = x[start:stop]
  if block.shape[0] == size:
    return block
  return np.pad(block, [(0, size - block.shape[0])] + [(0, 0)] * (x.ndim - 1), mode="edge")
