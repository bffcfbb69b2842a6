"""data.stream from TFDS: the cifar5m builder prepared from tiny fake parts (no mirror configured)."""
import operator

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("importlib_resources", reason="tensorflow-datasets needs importlib_resources to prepare data")

from harness import data  # noqa: E402
from tests.data import fake_data  # noqa: E402

IMAGES_PER_PART = 4


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """(data_dir, official train images, labels, test images) with the builder prepared once."""
  data_dir, _, parts = fake_data.prepare_fake_cifar5m(tmp_path_factory.mktemp("cifar5m_stream"), IMAGES_PER_PART,
                                                      seed=5)
  train_images = np.concatenate([parts[p][0] for p in range(5)])
  train_labels = np.concatenate([parts[p][1] for p in range(5)])
  return data_dir, train_images, train_labels, parts[5][0]


def test_tfds_stream_serves_every_example_once_in_storage_order(prepared):
  data_dir, images, labels, _ = prepared
  s = data.stream("cifar5m", "train", 4, data_dir=data_dir, mirrors="", with_indices=True)
  assert s.capacity == 20 and s.num_examples == 20 and operator.length_hint(s) == 5 and s.order == "tfds_storage"
  batches = list(s)
  order = np.concatenate([b[2] for b in batches])
  np.testing.assert_array_equal(np.sort(order), np.arange(20))  # each official index once
  np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images[order])
  got_labels = np.concatenate([b[1] for b in batches])
  assert got_labels.dtype == np.int64
  np.testing.assert_array_equal(got_labels, labels[order])
  record = s.describe()
  assert record["source"] == "tfds:cifar5m/1.0.0" and record["order"] == "tfds_storage" and record["n"] == 20
  assert record["checksum"] is None
  # the storage order is fixed: the same again, and `start` counts positions in it
  again = data.stream("cifar5m", "train", 2, start=6, num_examples=8, data_dir=data_dir, mirrors="",
                      with_indices=True)
  np.testing.assert_array_equal(np.concatenate([b[2] for b in again]), order[6:14])
  shuffled = data.stream("cifar5m", "train", 4, shuffle_buffer=8, seed=3, data_dir=data_dir, mirrors="",
                         with_indices=True)
  served = np.concatenate([b[2] for b in shuffled])
  for lo in (0, 8, 16):
    np.testing.assert_array_equal(np.sort(served[lo:lo + 8]), np.sort(order[lo:lo + 8]))


def test_tfds_stream_refuses_more_than_the_split(prepared):
  data_dir, _, _, test_images = prepared
  with pytest.raises(data.DataError, match=r"the stream of cifar5m/test \(tfds:cifar5m/1.0.0\) holds 4 examples, 8 "):
    data.stream("cifar5m", "test", 4, num_examples=8, data_dir=data_dir, mirrors="")
  s = data.stream("cifar5m", "test", 4, data_dir=data_dir, mirrors="", with_indices=True)
  x, _, idx = next(s)
  np.testing.assert_array_equal(x, test_images[idx])


def test_tfds_stream_without_prepared_data_is_a_data_error(tmp_path):
  with pytest.raises(data.DataError) as error:
    data.stream("cifar5m", "train", 4, data_dir=str(tmp_path / "none"), manual_dir=str(tmp_path), mirrors="")
  assert "part0.npz" in str(error.value) and "HARNESS_MIRRORS" in str(error.value) and "\n" not in str(error.value)
