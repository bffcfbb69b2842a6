"""The TFDS path, with `tfds.testing.mock_data` (no download): ids -> official indices, and equality with a mirror.

The mocked cifar10 stores N examples in a shuffled order, as TFDS does, with ids 'train_00017'; a fake mirror
holds the same examples in official order. Every subset must come out identical from both.
"""
import socket

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
tf = pytest.importorskip("tensorflow")

from harness import data  # noqa: E402
from tests.data import fake_data  # noqa: E402

N_EXAMPLES = 120
SUBSETS = [dict(size=30, seed=0, pool=100), dict(size=30, seed=1, pool=100), dict(size=20, seed=4, pool=120,
                                                                                   balanced=True)]


def _official_examples(split: str):
  images, labels = fake_data.random_examples(N_EXAMPLES, seed=11 if split == "train" else 12)
  return images, labels


def _mock_as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
  """Replaces DatasetBuilder._as_dataset: official examples in a shuffled storage order, like TFDS."""
  del read_config, shuffle_files
  split = str(split)
  images, labels = _official_examples(split)
  storage_order = np.random.default_rng(99).permutation(N_EXAMPLES)
  ds = tf.data.Dataset.from_tensor_slices({
      "id": np.array([f"{split}_{i:05d}".encode() for i in storage_order]),
      "image": images[storage_order], "label": labels[storage_order]})
  if decoders and isinstance(decoders.get("image"), tfds.decode.SkipDecoding):
    ds = ds.map(lambda ex: {**ex, "image": tf.io.encode_png(ex["image"])})  # stored encoded, as in TFDS
  return ds


@pytest.fixture
def mocked_cifar10():
  with tfds.testing.mock_data(as_dataset_fn=_mock_as_dataset):
    yield


@pytest.fixture
def mirror_of_mock(tmp_path):
  folder = str(tmp_path / "mirror")
  fake_data.write_mirror(folder, {f"{s}.npz": _official_examples(s) for s in ("train", "test")})
  return f"cifar10={folder}"


def test_ids_map_to_official_indices(mocked_cifar10):
  images, labels = _official_examples("train")
  split = data.load("cifar10", split="train", pool=N_EXAMPLES, mirrors="")
  assert split.source.startswith("tfds:cifar10/") and split.checksum is None
  np.testing.assert_array_equal(split.indices, np.arange(N_EXAMPLES))
  np.testing.assert_array_equal(split.images, images)
  np.testing.assert_array_equal(split.labels, labels)
  test = data.load("cifar10", split="test", size=10, seed=2, pool=50, mirrors="")
  test_images, test_labels = _official_examples("test")
  np.testing.assert_array_equal(test.images, test_images[test.indices])
  np.testing.assert_array_equal(test.labels, test_labels[test.indices])


@pytest.mark.parametrize("subset", SUBSETS)
def test_same_subset_from_tfds_and_mirror(mocked_cifar10, mirror_of_mock, subset):
  from_tfds = data.load("cifar10", split="train", mirrors="", **subset)
  from_mirror = data.load("cifar10", split="train", mirrors=mirror_of_mock, **subset)
  assert from_mirror.source.startswith("mirror:")
  for field in ("indices", "labels", "images"):
    np.testing.assert_array_equal(getattr(from_tfds, field), getattr(from_mirror, field))
  a, b = data.describe(from_tfds), data.describe(from_mirror)
  assert a["content_sha256"] == b["content_sha256"] and a["indices_sha256"] == b["indices_sha256"]
  if subset.get("balanced"):
    np.testing.assert_array_equal(np.bincount(from_tfds.labels, minlength=10), [2] * 10)


def test_offline_without_mirror_says_how_to_point_at_one(tmp_path, monkeypatch):
  monkeypatch.delenv(data.MIRRORS_ENV_VAR, raising=False)
  with pytest.raises(data.DataError) as error:
    data.load("cifar10", split="train", size=10, pool=100, data_dir=str(tmp_path), download=False)
  assert "HARNESS_MIRRORS" in str(error.value) and "--mirrors" in str(error.value)

  def no_network(*args, **kwargs):
    raise OSError("network unreachable (test)")

  monkeypatch.setattr(socket, "create_connection", no_network)  # the download is never attempted
  with pytest.raises(data.DataError) as error:
    data.load("cifar10", split="train", size=10, pool=100, data_dir=str(tmp_path))
  message = str(error.value)
  assert message.startswith("cifar10") and "HARNESS_MIRRORS" in message and "\n" not in message
