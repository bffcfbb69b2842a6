"""data.stream on tiny fake mirrors: order, each example once, window shuffle, errors, checksums, memory bound."""
import gc
import hashlib
import operator
import os
import tracemalloc

import numpy as np
import pytest

from harness import data, seeding
from harness.data import streaming, tfds_source
from tests.data import fake_data

SHARD_SIZES = (7, 5, 11, 1, 6)  # 30 train examples in uneven shards: batches straddle shard boundaries
MB = 1 << 20


@pytest.fixture(autouse=True)
def no_tfds(monkeypatch):
  """A configured mirror must never fall back to TFDS."""
  def refuse(*args, **kwargs):
    raise AssertionError("TFDS was consulted although a mirror is configured")
  monkeypatch.setattr(tfds_source, "TfdsSource", refuse)


@pytest.fixture(params=["stored", "compressed"])
def mirror(request, tmp_path):
  """(spec string, all train images, all train labels) of a 5-shard cifar10_jpeg mirror."""
  folder = str(tmp_path / "m")
  shards = {f"train_{k}.npz": fake_data.random_examples(n, seed=10 + k) for k, n in enumerate(SHARD_SIZES)}
  shards["test.npz"] = fake_data.random_examples(4, seed=99)
  fake_data.write_mirror(folder, shards, compressed=request.param == "compressed")
  names = [f"train_{k}.npz" for k in range(len(SHARD_SIZES))]
  return (f"cifar10_jpeg={folder}", np.concatenate([shards[n][0] for n in names]),
          np.concatenate([shards[n][1] for n in names]))


def _serve(s):
  batches = list(s)
  return batches, np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


@pytest.mark.parametrize("batch_size", [1, 3, 5, 30])
def test_official_order_across_shard_boundaries(mirror, batch_size):
  spec, images, labels = mirror
  s = data.stream("cifar10_jpeg", "train", batch_size, mirrors=spec, with_indices=True)
  assert s.capacity == 30 and s.num_examples == 30 and s.num_batches == 30 // batch_size
  batches, got_images, got_labels = _serve(s)
  assert len(batches) == 30 // batch_size
  for x, y, idx in batches:
    assert x.shape == (batch_size, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (batch_size,) and y.dtype == np.int64
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), np.arange(30))
  assert list(s) == []  # exhausted: nothing is served twice


def test_start_num_examples_and_remainder(mirror):
  spec, images, labels = mirror
  s = data.stream("cifar10_jpeg", "train", 4, start=6, num_examples=16, mirrors=spec, with_indices=True)
  _, got_images, got_labels = _serve(s)
  np.testing.assert_array_equal(got_images, images[6:22])
  np.testing.assert_array_equal(got_labels, labels[6:22])
  assert s.last_indices.tolist() == [18, 19, 20, 21]
  s = data.stream("cifar10_jpeg", "train", 4, start=3, mirrors=spec)  # 27 left: 6 whole batches
  assert s.num_examples == 24 and operator.length_hint(s) == 6
  s = data.stream("cifar10_jpeg", "train", 4, start=3, drop_remainder=False, mirrors=spec)
  batches, got_images, _ = _serve(s)
  assert s.num_examples == 27 and [len(b[1]) for b in batches] == [4] * 6 + [3]
  np.testing.assert_array_equal(got_images, images[3:])


def test_one_shot_iteration_and_length_hint(mirror):
  spec, images, _ = mirror
  s = data.stream("cifar10_jpeg", "train", 5, num_examples=20, mirrors=spec)
  assert operator.length_hint(s) == 4
  first = next(iter(s))
  assert operator.length_hint(s) == 3 and s.served == 5
  rest = [x for x, _ in s]  # a second iter() continues; the first batch is not served again
  np.testing.assert_array_equal(np.concatenate([first[0]] + rest), images[:20])
  assert operator.length_hint(s) == 0
  mapped = data.stream("cifar10_jpeg", "train", 5, num_examples=10, mirrors=spec).map(
      lambda x, y: (x.astype(np.float32) / 255, y))
  assert operator.length_hint(mapped) == 2
  x, _ = next(mapped)
  assert x.dtype == np.float32 and operator.length_hint(mapped) == 1 and mapped.describe()["n"] == 5
  closed = data.stream("cifar10_jpeg", "train", 5, mirrors=spec)
  next(closed)
  closed.close()
  assert list(closed) == []


def test_window_shuffle_is_a_seeded_permutation_within_windows(mirror):
  spec, images, labels = mirror
  def served(seed, batch_size=3, window=8, **kwargs):
    s = data.stream("cifar10_jpeg", "train", batch_size, shuffle_buffer=window, seed=seed, with_indices=True,
                    mirrors=spec, **kwargs)
    batches = list(s)
    return (np.concatenate([b[2] for b in batches]), np.concatenate([b[0] for b in batches]),
            np.concatenate([b[1] for b in batches]), s)
  order, got_images, got_labels, s = served(seed=1)
  assert len(order) == 30 and s.num_examples == 30
  np.testing.assert_array_equal(got_images, images[order])  # pixels and labels travel with their index
  np.testing.assert_array_equal(got_labels, labels[order])
  for k, lo in enumerate(range(0, 30, 8)):  # windows 0-7, 8-15, 16-23, 24-29
    window = order[lo:lo + 8]
    np.testing.assert_array_equal(np.sort(window), np.arange(lo, min(lo + 8, 30)))
    np.testing.assert_array_equal(window, lo + seeding.rng(1, k).permutation(len(window)))  # the documented rule
  assert not np.array_equal(order, np.arange(30))
  np.testing.assert_array_equal(served(seed=1)[0], order)  # reproducible
  np.testing.assert_array_equal(served(seed=1, batch_size=5)[0], order)  # independent of the batch size
  assert not np.array_equal(served(seed=2)[0], order)
  shifted = served(seed=1, start=4, num_examples=24)[0]  # windows count from the first served example
  np.testing.assert_array_equal(np.sort(shifted[:8]), np.arange(4, 12))
  record = s.describe()
  assert record["shuffle_buffer"] == 8 and record["seed"] == 1 and record["n"] == 30


def test_requests_beyond_the_source_fail_at_construction(mirror):
  spec, _, _ = mirror
  with pytest.raises(data.DataError) as error:
    data.stream("cifar10_jpeg", "train", 4, num_examples=64, mirrors=spec)
  message = str(error.value)
  assert message.startswith("the stream of cifar10_jpeg/train (mirror:") and "holds 30 examples, 64 asked" in message
  assert "\n" not in message
  with pytest.raises(data.DataError, match="holds 30 examples, 10 of them from index 20; 12 asked"):
    data.stream("cifar10_jpeg", "train", 4, start=20, num_examples=12, mirrors=spec)
  with pytest.raises(data.DataError, match="from index 28 that is not one batch of 4"):
    data.stream("cifar10_jpeg", "train", 4, start=28, mirrors=spec)
  with pytest.raises(data.DataError, match="num_examples=10 is not a multiple of batch_size=4"):
    data.stream("cifar10_jpeg", "train", 4, num_examples=10, mirrors=spec)
  assert data.stream("cifar10_jpeg", "train", 4, num_examples=10, drop_remainder=False, mirrors=spec).num_batches == 3
  for kwargs, match in [(dict(batch_size=0), "batch_size must be an integer >= 1"),
                        (dict(batch_size=4, start=-1), "start must be"),
                        (dict(batch_size=4, shuffle_buffer=-2), "shuffle_buffer must be"),
                        (dict(batch_size=2.5), "batch_size must be"),
                        (dict(batch_size=4, num_examples=0), "num_examples")]:
    with pytest.raises(data.DataError, match=match):
      data.stream("cifar10_jpeg", "train", mirrors=spec, **kwargs)
  with pytest.raises(data.DataError, match="no split 'validation'"):
    data.stream("cifar10_jpeg", "validation", 4, mirrors=spec)
  with pytest.raises(data.DataError, match="served only by a mirror"):
    data.stream("cifar10_jpeg", "train", 4, mirrors="")


def test_corrupted_shard_fails_its_checksum_before_serving(tmp_path):
  folder = str(tmp_path / "m")
  shards = {f"train_{k}.npz": fake_data.random_examples(6, seed=k) for k in range(3)}
  sums = fake_data.write_mirror(folder, shards)
  path = os.path.join(folder, "train_2.npz")  # the last shard: caught before the first batch of train_0
  with open(path, "r+b") as f:
    f.seek(200)
    byte = f.read(1)
    f.seek(200)
    f.write(bytes([byte[0] ^ 0xFF]))
  with pytest.raises(data.DataError) as error:
    data.stream("cifar10_jpeg", "train", 2, num_examples=2, mirrors=f"cifar10_jpeg={folder}")
  assert f"checksum mismatch for {path}" in str(error.value) and sums["train_2.npz"] in str(error.value)


def test_describe_for_the_run_record(mirror):
  spec, images, labels = mirror
  s = data.stream("cifar10_jpeg", "train", 5, num_examples=15, mirrors=spec)
  folder = spec.split("=", 1)[1]
  before = s.describe()
  assert before["n"] == 0 and before["num_examples"] == 15 and before["checksum"] == data.Mirror(
      "cifar10_jpeg", folder).checksum("train")
  list(s)
  record = s.describe()
  assert {k: record[k] for k in ("dataset_id", "split", "source", "order", "start", "n", "batch_size", "seed")} == {
      "dataset_id": "cifar10_jpeg", "split": "train", "source": f"mirror:{folder}", "order": "official", "start": 0,
      "n": 15, "batch_size": 5, "seed": None}
  digest = hashlib.sha256()
  for lo in range(0, 15, 5):
    digest.update(np.arange(lo, lo + 5, dtype="<i8").tobytes())
    digest.update(labels[lo:lo + 5].astype("<i8").tobytes())
    digest.update(images[lo:lo + 5].tobytes())
  assert record["served_sha256"] == digest.hexdigest()


def test_cifar5m_mirror_of_part_files(tmp_path):
  folder = str(tmp_path / "c5m")
  parts = {f"part{k}.npz": fake_data.random_examples(n, seed=k) for k, n in [(0, 9), (1, 4), (2, 7)]}
  parts = {name: (x, y.astype(np.uint8)) for name, (x, y) in parts.items()}  # labels as stored: any integer dtype
  fake_data.write_mirror(folder, parts, keys=("X", "Y"))
  spec = f"cifar5m={folder}"
  s = data.stream("cifar5m", "train", 4, mirrors=spec, with_indices=True)  # train = part0.. (a prefix: 0, 1, 2)
  assert s.capacity == 20 and s.num_examples == 20
  batches = list(s)
  np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]),
                                np.concatenate([parts[f"part{k}.npz"][0] for k in range(3)]))
  got_labels = np.concatenate([b[1] for b in batches])
  assert got_labels.dtype == np.int64
  np.testing.assert_array_equal(got_labels, np.concatenate([parts[f"part{k}.npz"][1] for k in range(3)]))
  np.testing.assert_array_equal(np.concatenate([b[2] for b in batches]), np.arange(20))
  loaded = data.load("cifar5m", "train", size=5, seed=0, pool=20, mirrors=spec)  # data.load reads them too
  all_images = np.concatenate([parts[f"part{k}.npz"][0] for k in range(3)])
  np.testing.assert_array_equal(loaded.images, all_images[loaded.indices])
  with pytest.raises(data.DataError, match="holds no part5.npz for cifar5m test"):
    data.stream("cifar5m", "test", 4, mirrors=spec)
  os.remove(os.path.join(folder, "part1.npz"))
  with pytest.raises(data.DataError, match="part1.npz is missing but later parts of cifar5m train are there"):
    data.stream("cifar5m", "train", 4, mirrors=spec)


def _traced_peak(fn) -> int:
  """Peak bytes allocated (tracemalloc) while fn runs, above what was allocated before."""
  gc.collect()
  tracemalloc.start()
  try:
    base = tracemalloc.get_traced_memory()[0]
    fn()
    return tracemalloc.get_traced_memory()[1] - base
  finally:
    tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "compressed"])
def test_memory_is_bounded_by_batch_chunk_and_window_not_the_split(tmp_path, compressed):
  n = 20_000  # 60 MB of 32x32x3 images in one shard
  folder = str(tmp_path / "big")
  images = np.empty((n, 32, 32, 3), dtype=np.uint8)
  images[:] = (np.arange(n, dtype=np.uint64)[:, None, None, None] * 7 + np.arange(32 * 32 * 3).reshape(32, 32, 3)
               ).astype(np.uint8)  # varied but compressible, so writing the compressed shard is quick
  labels = (np.arange(n) % 10).astype(np.int64)
  fake_data.write_mirror(folder, {"train_0.npz": (images, labels)}, compressed=compressed)
  split_bytes = images.nbytes
  first = images[:64].copy()
  del images
  spec = f"cifar10_jpeg={folder}"
  seen = {}

  def construct():  # verifies the shard's sha256: reads the file in 4 MiB pieces (mirrors.HASH_CHUNK_BYTES)
    data.stream("cifar10_jpeg", "train", 64, mirrors=spec).close()

  def serve(shuffle_buffer):
    s = data.stream("cifar10_jpeg", "train", 64, num_examples=n - n % 64, shuffle_buffer=shuffle_buffer, seed=0,
                    mirrors=spec)  # hash cached by `construct`: what remains is serving
    def run():
      count = 0
      for x, y in s:
        if count == 0:
          seen[shuffle_buffer, "first"] = x.copy()
        count += len(y)
      seen[shuffle_buffer, "count"] = count
    return run

  peak_construct = _traced_peak(construct)
  peak = _traced_peak(serve(0))
  window = 1024  # 3 MiB of images
  peak_shuffled = _traced_peak(serve(window))
  batch_bytes = 64 * 3072
  kind = "compressed" if compressed else "stored"
  print(f"\nsplit {split_bytes / MB:.1f} MiB ({kind}): peak {peak_construct / MB:.2f} MiB verifying, serving "
        f"{peak / MB:.2f} MiB in order, {peak_shuffled / MB:.2f} MiB with a {window}-example window "
        f"({window * 3072 / MB:.1f} MiB)")
  assert seen[0, "count"] == seen[window, "count"] == n - n % 64
  np.testing.assert_array_equal(seen[0, "first"], first)
  assert peak_construct < 10 * MB
  assert peak < 3 * streaming.CHUNK_BYTES + 2 * batch_bytes + MB  # a chunk (+ its compressed bytes), a batch
  assert peak_shuffled < window * 3072 + 3 * streaming.CHUNK_BYTES + 2 * batch_bytes + MB
  assert max(peak, peak_shuffled, peak_construct) < 10 * MB < split_bytes / 5


SHARED_JPEG = os.path.join(os.environ.get("SHARED_DATA") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")), "cifar10-jpeg")


@pytest.mark.skipif(not os.path.isdir(SHARED_JPEG), reason=f"no mirror at {SHARED_JPEG}")
def test_real_cifar10_jpeg_mirror():
  spec = f"cifar10_jpeg={SHARED_JPEG}"
  s = data.stream("cifar10_jpeg", "train", 100, mirrors=spec, with_indices=True)
  assert s.capacity == 50_000 and s.num_examples == 50_000 and operator.length_hint(s) == 500
  with np.load(os.path.join(SHARED_JPEG, "train_0.npz")) as shard:
    shard0_images, shard0_labels = shard["images"], shard["labels"]
  x, y, idx = next(s)
  np.testing.assert_array_equal(x, shard0_images[:100])
  np.testing.assert_array_equal(y, shard0_labels[:100])
  np.testing.assert_array_equal(idx, np.arange(100))
  assert y[0] == 6  # official train image 0 is a frog
  s.close()
  across = data.stream("cifar10_jpeg", "train", 4, start=9_998, num_examples=4, mirrors=spec)  # train_0 | train_1
  x, y = next(across)
  with np.load(os.path.join(SHARED_JPEG, "train_1.npz")) as shard:
    np.testing.assert_array_equal(x, np.concatenate([shard0_images[-2:], shard["images"][:2]]))
    np.testing.assert_array_equal(y, np.concatenate([shard0_labels[-2:], shard["labels"][:2]]))
  with pytest.raises(data.DataError, match=r"cifar10_jpeg/train .* holds 50000 examples, 64000 asked"):
    data.stream("cifar10_jpeg", "train", 64, num_examples=64_000, mirrors=spec)
  assert data.stream("cifar10_jpeg", "test", 100, mirrors=spec).num_examples == 10_000
