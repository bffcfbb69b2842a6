"""Atomic file writes: the one place that writes a temporary file, fsyncs it and renames it over the target.

A process killed at any point leaves either the old file (or none) or the complete new one, never a
partial file; a writer that raises leaves the old file as it was and no temporary file behind. The
temporary file lies in the target's folder (os.replace is atomic only within one file system) and is
named `.<name>.<random>.tmp`. The new file gets the mode a plain `open(path, "w")` would give it
(0666 & ~umask), not mkstemp's 0600: records, references, reports and caches are for everyone who may
read the folder.

  write_text_atomic(path, text)          text (UTF-8)
  write_bytes_atomic(path, data)         bytes
  with atomic_open(path, "wb") as f:     any writer that takes a file object (json.dump, np.savez, ...)
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
  """A file object to write `path`'s new content into; `path` is replaced when the block ends normally.

  `mode` is "w" (text, `encoding`) or "wb" (binary). The parent folder is created if missing. When the
  block raises (any exception, KeyboardInterrupt included) the temporary file is removed and `path` is
  left untouched.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
  try:
    f = os.fdopen(fd, mode, encoding=None if mode == "wb" else encoding)
  except BaseException:
    os.close(fd)
    os.unlink(tmp)
    raise
  try:
    with f:
      os.chmod(tmp, FILE_MODE)
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_bytes_atomic(path: str, data: bytes) -> None:
  with atomic_open(path, "wb") as f:
    f.write(data)


def write_text_atomic(path: str, text: str, encoding: str = "utf-8") -> None:
  with atomic_open(path, "w", encoding=encoding) as f:
    f.write(text)
