"""harness.data.npz: .npy headers of npz members and reading rows from any start, stored or compressed."""
import zipfile

import numpy as np
import pytest

from harness import data
from harness.data import npz


@pytest.fixture(params=["stored", "compressed"])
def archive(request, tmp_path):
  rng = np.random.default_rng(0)
  arrays = {"images": rng.integers(0, 256, (37, 4, 5, 3), dtype=np.uint8),
            "labels": rng.integers(0, 10, 37).astype(np.int64), "Y": rng.integers(0, 10, 37).astype(np.uint8)}
  path = str(tmp_path / "a.npz")
  (np.savez_compressed if request.param == "compressed" else np.savez)(path, **arrays)
  return path, arrays, request.param == "compressed"


def test_header_without_reading_the_data(archive):
  path, arrays, compressed = archive
  header = npz.member_header(path, "images")
  assert header.shape == (37, 4, 5, 3) and header.dtype == np.uint8 and header.compressed == compressed
  assert header.rows == 37 and header.row_shape == (4, 5, 3) and header.row_bytes == 60
  assert (header.data_offset is None) == compressed
  labels = npz.member_header(path, "Y")
  assert labels.shape == (37,) and labels.dtype == np.uint8 and labels.row_bytes == 1


@pytest.mark.parametrize("start", [0, 1, 17, 36, 37])
def test_rows_from_any_start_in_chunks(archive, start):
  path, arrays, _ = archive
  for key in ("images", "labels"):
    with npz.RowReader(npz.member_header(path, key), start) as reader:
      parts = []
      while reader.remaining:
        parts.append(reader.read(min(5, reader.remaining)))
      assert reader.read(0).shape == (0,) + arrays[key].shape[1:]
    got = np.concatenate(parts) if parts else arrays[key][:0]
    np.testing.assert_array_equal(got, arrays[key][start:])
    assert got.dtype == arrays[key].dtype


def test_stored_data_offset_points_at_the_rows(tmp_path):
  images = np.arange(2 * 3 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 3)
  path = str(tmp_path / "s.npz")
  np.savez(path, images=images)
  header = npz.member_header(path, "images")
  with open(path, "rb") as f:
    f.seek(header.data_offset)
    assert f.read(images.nbytes) == images.tobytes()
  with zipfile.ZipFile(path) as z:  # numpy writes zip64 members: the local header's extra field differs
    assert z.getinfo("images.npy").compress_type == zipfile.ZIP_STORED


def test_bad_members_are_data_errors(tmp_path):
  path = str(tmp_path / "b.npz")
  np.savez(path, images=np.asfortranarray(np.zeros((3, 2, 2, 1), np.uint8)), labels=np.zeros(3), obj=np.zeros(()))
  with pytest.raises(data.DataError, match="has no array 'X' .it holds images, labels, obj."):
    npz.member_header(path, "X")
  with pytest.raises(data.DataError, match="Fortran order"):
    npz.member_header(path, "images")
  with pytest.raises(data.DataError, match="scalar"):
    npz.member_header(path, "obj")
  (tmp_path / "not.npz").write_bytes(b"not a zip")
  with pytest.raises(data.DataError, match="not a readable .npz"):
    npz.member_header(str(tmp_path / "not.npz"), "images")
  with pytest.raises(data.DataError, match="outside array"):
    npz.RowReader(npz.member_header(path, "labels"), 4)
