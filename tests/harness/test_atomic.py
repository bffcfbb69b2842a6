"""The one atomic-write helper: a writer that fails leaves the old file and no temporary file behind."""
import os
import stat

import numpy as np
import pytest

from harness import atomic


class Died(BaseException):
  """Stands for a kill (KeyboardInterrupt, SystemExit) in the middle of a write."""


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_writer_raising_mid_write_keeps_old_file(tmp_path, mode):
  path = str(tmp_path / "file.dat")
  atomic.write_text_atomic(path, "old content\n")
  with pytest.raises(Died):
    with atomic.atomic_open(path, mode) as f:
      f.write("new, partial" if mode == "w" else b"new, partial")
      f.flush()
      raise Died
  assert open(path).read() == "old content\n"
  assert os.listdir(tmp_path) == ["file.dat"]


def test_failed_first_write_leaves_nothing(tmp_path):
  with pytest.raises(ValueError):
    with atomic.atomic_open(str(tmp_path / "new.npz"), "wb") as f:
      np.savez(f, a=np.arange(3))
      raise ValueError("writer bug")
  assert os.listdir(tmp_path) == []


def test_writes_text_bytes_and_numpy(tmp_path):
  atomic.write_text_atomic(str(tmp_path / "sub" / "t.md"), "a — b\n")  # creates the folder; UTF-8
  assert (tmp_path / "sub" / "t.md").read_text(encoding="utf-8") == "a — b\n"
  atomic.write_bytes_atomic(str(tmp_path / "b.bin"), b"\x00\x01")
  atomic.write_bytes_atomic(str(tmp_path / "b.bin"), b"\x02")
  assert (tmp_path / "b.bin").read_bytes() == b"\x02"
  with atomic.atomic_open(str(tmp_path / "x.npz"), "wb") as f:
    np.savez(f, a=np.arange(3))
  with np.load(tmp_path / "x.npz") as data:
    assert data["a"].tolist() == [0, 1, 2]
  assert sorted(os.listdir(tmp_path)) == ["b.bin", "sub", "x.npz"]


def test_file_mode_respects_umask(tmp_path):
  # mkstemp creates 0600 files; the result must be as readable as any file the user writes (0666 & ~umask)
  path = str(tmp_path / "f.txt")
  atomic.write_text_atomic(path, "x")
  mask = os.umask(0)
  os.umask(mask)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask


def test_rejects_other_modes(tmp_path):
  with pytest.raises(ValueError, match="mode"):
    with atomic.atomic_open(str(tmp_path / "f"), "a"):
      pass
  assert os.listdir(tmp_path) == []
