"""Reading the arrays of an `.npz` file row by row, never the whole array.

An npz (np.savez / np.savez_compressed) is a zip archive with one `<key>.npy` member per array. `member_header`
parses a member's .npy header (numpy.lib.format: magic, then the header dict) without reading its data;
`RowReader` then reads rows (slices along axis 0) in order, a chunk at a time:
  - stored members (np.savez): the data lie contiguously in the file, so the reader seeks straight to row
    `start` (byte offset = the local zip header's end + the .npy header + start * row bytes) and reads with a
    plain file object (no zip layer, works for zip64 members such as the 3 GB CIFAR-5m parts);
  - compressed members (np.savez_compressed): read through the zip module's decompressing stream; rows before
    `start` are decompressed and discarded chunk by chunk.
Memory: the rows asked for, plus (compressed members) a few pieces of `READ_PIECE_BYTES` in the zip module.
Fortran-order and object arrays cannot be read by rows and are refused. Every failure is a one-line DataError
naming the file.
"""
from __future__ import annotations

import dataclasses
import struct
import zipfile

import numpy as np
from numpy.lib import format as npy_format

from harness.data.errors import DataError

DISCARD_CHUNK_BYTES = 1 << 20  # rows before `start` of a compressed member are decompressed this much at a time
READ_PIECE_BYTES = 1 << 18  # a compressed member is read into the rows' array this much at a time
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header (APPNOTE 4.3.7), 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"


@dataclasses.dataclass(frozen=True)
class MemberHeader:
  """One `<key>.npy` member: its array's shape and dtype, and where its data start."""
  path: str
  key: str
  shape: tuple[int, ...]
  dtype: np.dtype
  compressed: bool
  npy_header_bytes: int  # bytes of the .npy magic + header, before the data
  data_offset: int | None  # stored members: byte offset of the data in the file; None when compressed

  @property
  def rows(self) -> int:
    return self.shape[0]

  @property
  def row_shape(self) -> tuple[int, ...]:
    return self.shape[1:]

  @property
  def row_bytes(self) -> int:
    return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize


def _read_header(f, path: str, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
  try:
    version = npy_format.read_magic(f)
    if version == (1, 0):
      shape, fortran_order, dtype = npy_format.read_array_header_1_0(f)
    elif version == (2, 0):
      shape, fortran_order, dtype = npy_format.read_array_header_2_0(f)
    else:  # (3, 0): utf-8 field names; numpy has no public reader for it
      shape, fortran_order, dtype = npy_format._read_array_header(f, version)  # pylint: disable=protected-access
  except ValueError as error:
    raise DataError(f"{path}: member {key}.npy is not a valid .npy array ({' '.join(str(error).split())})") from None
  if fortran_order and len(shape) > 1:
    raise DataError(f"{path}: array {key!r} is stored in Fortran order and cannot be read by rows")
  if dtype.hasobject:
    raise DataError(f"{path}: array {key!r} holds Python objects (dtype {dtype}); expected a numeric array")
  if not shape:
    raise DataError(f"{path}: array {key!r} is a scalar; expected one row per example")
  return tuple(int(d) for d in shape), bool(fortran_order), dtype


def _open_zip(path: str) -> zipfile.ZipFile:
  try:
    return zipfile.ZipFile(path)
  except (OSError, zipfile.BadZipFile) as error:
    raise DataError(f"{path} is not a readable .npz (zip) file ({type(error).__name__}: {error})") from None


def _member_info(archive: zipfile.ZipFile, path: str, key: str) -> zipfile.ZipInfo:
  try:
    return archive.getinfo(f"{key}.npy")
  except KeyError:
    keys = sorted(n[:-4] for n in archive.namelist() if n.endswith(".npy"))
    raise DataError(f"{path} has no array {key!r} (it holds {', '.join(keys) or 'none'})") from None


def _local_data_offset(path: str, info: zipfile.ZipInfo) -> int:
  """Byte offset of a member's data: after its local header, whose name and extra fields may differ in
  length from the central directory's (zip64 members carry their sizes there)."""
  with open(path, "rb") as f:
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
  if len(raw) != _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
    raise DataError(f"{path}: the zip entry of {info.filename} has no local file header")
  fields = _LOCAL_HEADER.unpack(raw)
  name_length, extra_length = fields[9], fields[10]
  return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def member_header(path: str, key: str) -> MemberHeader:
  """The shape, dtype and data position of array `key` in the npz at `path`, reading only its header."""
  with _open_zip(path) as archive:
    info = _member_info(archive, path, key)
    if info.flag_bits & 0x1:
      raise DataError(f"{path}: member {info.filename} is encrypted")
    compressed = info.compress_type != zipfile.ZIP_STORED
    with archive.open(info) as f:
      shape, _, dtype = _read_header(f, path, key)
      header_bytes = f.tell()
  offset = None if compressed else _local_data_offset(path, info) + header_bytes
  header = MemberHeader(path=path, key=key, shape=shape, dtype=dtype, compressed=compressed,
                        npy_header_bytes=header_bytes, data_offset=offset)
  expected = header.rows * header.row_bytes
  if header.npy_header_bytes + expected != info.file_size:
    raise DataError(f"{path}: member {info.filename} holds {info.file_size - header_bytes} data bytes, its header "
                    f"(shape {shape}, dtype {dtype}) says {expected}")
  return header


class RowReader:
  """Rows start, start + 1, ... of one array of an npz, read in order: `read(n)` returns the next n rows.

  The returned arrays are fresh (never views into a shared buffer) in the member's dtype.
  """

  def __init__(self, header: MemberHeader, start: int = 0):
    if not 0 <= start <= header.rows:
      raise DataError(f"{header.path}: row {start} is outside array {header.key!r} of {header.rows} rows")
    self.header = header
    self.position = start
    self._archive: zipfile.ZipFile | None = None
    if header.compressed:
      self._archive = _open_zip(header.path)
      self._file = self._archive.open(f"{header.key}.npy")
      self._file.read(header.npy_header_bytes)
      self._discard(start * header.row_bytes)
    else:
      self._file = open(header.path, "rb")  # pylint: disable=consider-using-with
      self._file.seek(header.data_offset + start * header.row_bytes)

  def _discard(self, nbytes: int) -> None:
    while nbytes > 0:
      got = len(self._file.read(min(nbytes, DISCARD_CHUNK_BYTES)))
      if not got:
        raise DataError(f"{self.header.path}: array {self.header.key!r} ends early (truncated member)")
      nbytes -= got

  @property
  def remaining(self) -> int:
    return self.header.rows - self.position

  def read(self, n: int) -> np.ndarray:
    """The next n rows (n <= remaining), shape (n, *row_shape)."""
    if not 0 <= n <= self.remaining:
      raise ValueError(f"asked for {n} rows, {self.remaining} remain in {self.header.path}:{self.header.key}")
    out = np.empty((n,) + self.header.row_shape, dtype=self.header.dtype)
    view = memoryview(out.reshape(-1).view(np.uint8)) if out.size else memoryview(b"")
    filled = 0
    while filled < len(view):
      if self.header.compressed:  # the zip stream allocates what it returns: read in bounded pieces
        piece = self._file.read(min(len(view) - filled, READ_PIECE_BYTES))
        got = len(piece)
        view[filled:filled + got] = piece
        del piece
      else:
        got = self._file.readinto(view[filled:])
      if not got:
        raise DataError(f"{self.header.path}: array {self.header.key!r} ends early (truncated file)")
      filled += got
    self.position += n
    return out

  def close(self) -> None:
    self._file.close()
    if self._archive is not None:
      self._archive.close()

  def __enter__(self) -> "RowReader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
