"""Offline mirrors: spec parsing, sha256 checks against the README, capacity, shard order, hash cache."""
import hashlib
import os

import numpy as np
import pytest

from harness import data
from harness.data import tfds_source
from tests.data import fake_data


def _one_shard_mirror(tmp_path, n_train=40, n_test=20, **kwargs):
  folder = str(tmp_path / "mirror")
  train, test = fake_data.random_examples(n_train, seed=1), fake_data.random_examples(n_test, seed=2)
  sums = fake_data.write_mirror(folder, {"train.npz": train, "test.npz": test}, **kwargs)
  return folder, train, test, sums


@pytest.fixture(autouse=True)
def no_tfds(monkeypatch):
  """A configured mirror must never fall back to TFDS (and so never download)."""
  def refuse(*args, **kwargs):
    raise AssertionError("TFDS was consulted although a mirror is configured")
  monkeypatch.setattr(tfds_source, "TfdsSource", refuse)


def test_parse_mirrors_spec(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  table = data.parse_mirrors(" cifar10=rel/a , cifar10_jpeg=/abs/b,")
  assert table == {"cifar10": str(tmp_path / "rel" / "a"), "cifar10_jpeg": "/abs/b"}
  assert data.parse_mirrors("") == {}
  for bad, message in [("cifar10", "dataset_id=folder"), ("=x", "dataset_id=folder"), ("cifar10=", "dataset_id=folder"),
                       ("cifar-10=x", "unknown dataset 'cifar-10'"), ("cifar10=a,cifar10=b", "two mirrors")]:
    with pytest.raises(data.DataError, match=message):
      data.parse_mirrors(bad)


def test_env_var_is_the_default(tmp_path, monkeypatch):
  folder, train, _, _ = _one_shard_mirror(tmp_path)
  monkeypatch.setenv(data.MIRRORS_ENV_VAR, f"cifar10={folder}")
  split = data.load("cifar10", split="train", pool=40)
  assert split.source == f"mirror:{folder}"
  np.testing.assert_array_equal(split.images, train[0])
  assert data.resolve_mirrors({"cifar10": folder}) == {"cifar10": folder}


def test_good_checksums_load_and_record(tmp_path):
  folder, train, test, sums = _one_shard_mirror(tmp_path)
  split = data.load("cifar10", split="test", pool=20, mirrors=f"cifar10={folder}")
  np.testing.assert_array_equal(split.images, test[0])
  np.testing.assert_array_equal(split.labels, test[1])
  np.testing.assert_array_equal(split.indices, np.arange(20))
  assert split.images.dtype == np.uint8 and split.labels.dtype == np.int64 and split.indices.dtype == np.int64
  # combined checksum: sha256 over the sorted 'name:sha256' lines of the split's shards, computed by hand
  assert split.checksum == hashlib.sha256(f"test.npz:{sums['test.npz']}".encode()).hexdigest()
  record = data.describe(split)
  assert record["checksum"] == split.checksum and record["dataset_id"] == "cifar10" and record["n"] == 20
  assert record["indices_sha256"] == hashlib.sha256(np.arange(20, dtype="<i8").tobytes()).hexdigest()


def test_bad_checksum_names_file_expected_and_actual(tmp_path):
  wrong = "ab" * 32
  folder, _, _, sums = _one_shard_mirror(tmp_path, override={"train.npz": wrong})
  with pytest.raises(data.DataError) as error:
    data.load("cifar10", split="train", size=10, pool=40, mirrors=f"cifar10={folder}")
  message = str(error.value)
  assert os.path.join(folder, "train.npz") in message and wrong in message and sums["train.npz"] in message
  assert "\n" not in message
  # the other split has a correct hash and still loads
  assert len(data.load("cifar10", split="test", pool=20, mirrors=f"cifar10={folder}")) == 20


def test_missing_readme_hash_and_missing_readme(tmp_path):
  folder, _, _, _ = _one_shard_mirror(tmp_path, listed=["test.npz"])
  with pytest.raises(data.DataError, match="no sha256 for train.npz"):
    data.load("cifar10", split="train", pool=40, mirrors=f"cifar10={folder}")
  os.remove(os.path.join(folder, "README.md"))
  with pytest.raises(data.DataError, match="has no README.md"):
    data.load("cifar10", split="test", pool=20, mirrors=f"cifar10={folder}")


def test_listed_shard_missing_on_disk(tmp_path):
  folder = str(tmp_path / "m")
  shards = {f"train_{k}.npz": fake_data.random_examples(5, seed=k) for k in range(3)}
  fake_data.write_mirror(folder, shards)
  os.remove(os.path.join(folder, "train_1.npz"))  # would silently shift official indices 10.. down by 5
  with pytest.raises(data.DataError, match="lists train_1.npz but the file is missing"):
    data.load("cifar10", split="train", pool=5, mirrors=f"cifar10={folder}")


def test_request_beyond_capacity(tmp_path):
  folder, _, _, _ = _one_shard_mirror(tmp_path)
  with pytest.raises(data.DataError) as error:
    data.load("cifar10", split="train", size=10, pool=41, mirrors=f"cifar10={folder}")
  message = str(error.value)
  assert "cifar10" in message and "41" in message and "holds 40" in message and "\n" not in message
  with pytest.raises(data.DataError, match="pool of the first 50000 examples.*holds 40"):
    data.load("cifar10", split="train", size=10, mirrors=f"cifar10={folder}")  # default pool = whole split


def test_multi_shard_order_is_official_order(tmp_path):
  # train_0..train_10: name order with numbers compared as numbers (train_2 before train_10)
  folder = str(tmp_path / "jpeg")
  shards = {f"train_{k}.npz": fake_data.random_examples(3, seed=100 + k) for k in range(11)}
  shards["test.npz"] = fake_data.random_examples(4, seed=7)
  fake_data.write_mirror(folder, shards)
  order = [f"train_{k}.npz" for k in range(11)]
  all_images = np.concatenate([shards[n][0] for n in order])
  all_labels = np.concatenate([shards[n][1] for n in order])
  split = data.load("cifar10_jpeg", split="train", pool=33, mirrors=f"cifar10_jpeg={folder}")
  np.testing.assert_array_equal(split.images, all_images)
  np.testing.assert_array_equal(split.labels, all_labels)
  sub = data.load("cifar10_jpeg", split="train", size=7, seed=3, pool=33, mirrors=f"cifar10_jpeg={folder}")
  np.testing.assert_array_equal(sub.images, all_images[sub.indices])
  mirror = data.Mirror("cifar10_jpeg", folder)
  assert [s.start for s in mirror.shards("train")] == list(range(0, 33, 3))
  assert mirror.capacity("test") == 4


def test_hash_cache_is_reused_and_invalidated_by_a_change(tmp_path, monkeypatch):
  folder, train, _, _ = _one_shard_mirror(tmp_path)
  spec = f"cifar10={folder}"
  data.load("cifar10", split="train", pool=40, mirrors=spec)
  file_hashes = []  # file_sha256 starts an empty sha256() per file it reads
  real_sha256 = hashlib.sha256

  def counting_sha256(*args):
    if not args:
      file_hashes.append(1)
    return real_sha256(*args)

  monkeypatch.setattr(hashlib, "sha256", counting_sha256)
  data.load("cifar10", split="train", pool=40, mirrors=spec)
  assert file_hashes == []  # the verified hash of train.npz came from the cache
  # replace the shard with other content (a new file at the same path): hashed again and rejected
  images, labels = train
  np.savez(tmp_path / "other.npz", images=255 - images, labels=labels)
  os.replace(tmp_path / "other.npz", os.path.join(folder, "train.npz"))
  with pytest.raises(data.DataError, match="checksum mismatch"):
    data.load("cifar10", split="train", pool=40, mirrors=spec)
  assert file_hashes == [1]


def test_mirror_only_dataset_without_mirror(monkeypatch):
  monkeypatch.delenv(data.MIRRORS_ENV_VAR, raising=False)
  with pytest.raises(data.DataError, match="cifar10_jpeg is served only by a mirror.*HARNESS_MIRRORS"):
    data.load("cifar10_jpeg", split="train", size=10, pool=100)


def test_bad_requests_are_data_errors(tmp_path):
  folder, _, _, _ = _one_shard_mirror(tmp_path)
  spec = f"cifar10={folder}"
  for kwargs, message in [({"split": "validation"}, "no split 'validation'"), ({"pool": 0}, "pool must be"),
                          ({"size": 41, "pool": 40}, "size must be in 1..pool=40"),
                          ({"size": 15, "pool": 40, "balanced": True}, "divisible by 10")]:
    with pytest.raises(data.DataError, match=message):
      data.load("cifar10", mirrors=spec, **kwargs)
  with pytest.raises(data.DataError, match="unknown dataset 'mnist'"):
    data.load("mnist", mirrors=spec)
  with pytest.raises(data.DataError, match="does not exist"):
    data.load("cifar10", pool=10, mirrors=f"cifar10={tmp_path / 'nowhere'}")
  assert issubclass(data.DataError, Exception)
