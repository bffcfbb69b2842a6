"""Files of a distributed job on any storage `etils.epath` reaches (local disk, gs://, s3://, hdfs:// via gfile).

Every element's output is written whole or not at all, so a reader (a resumed run, the assembly) never sees a
partial file: on local disk through `harness.atomic` (temporary file, fsync, rename); elsewhere as a temporary
object renamed over the target (object stores make an object visible only when its upload completes).
"""
from __future__ import annotations

import io
import uuid

import numpy as np
from etils import epath

from harness import atomic


def path(*parts: str) -> epath.Path:
  return epath.Path(parts[0]).joinpath(*parts[1:])


def _is_local(p: epath.Path) -> bool:
  return "://" not in str(p)


def write_bytes(target: epath.Path, data: bytes) -> None:
  target = epath.Path(target)
  if _is_local(target):
    atomic.write_bytes_atomic(str(target), data)
    return
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
  tmp.write_bytes(data)
  tmp.replace(target)  # a retried worker may find the element written already


def write_npz(target: epath.Path, arrays: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(target, buffer.getvalue())


def read_npz(source: epath.Path, names=None) -> dict[str, np.ndarray] | None:
  """The arrays of an .npz file (only `names`, when given), or None when it is unreadable or lacks one."""
  try:
    with np.load(io.BytesIO(epath.Path(source).read_bytes())) as data:
      return {name: data[name] for name in (data.files if names is None else names)}
  except (OSError, KeyError, ValueError, EOFError):
    return None


def names_in(folder: epath.Path) -> set[str]:
  """File names in `folder` (none when it does not exist)."""
  folder = epath.Path(folder)
  return {p.name for p in folder.iterdir()} if folder.exists() else set()
