"""The cifar5m TFDS builder on tiny fake parts (3 images a part) prepared from a manual dir in tmp_path."""
import os

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
# tensorflow-datasets 4.9.10 imports importlib_resources to prepare any dataset (DatasetBuilder.code_path);
# without it download_and_prepare fails, which harness.data reports as a DataError.
pytest.importorskip("importlib_resources", reason="tensorflow-datasets needs importlib_resources to prepare data")

from harness import data  # noqa: E402
from harness.data import cifar5m  # noqa: E402
from tests.data import fake_data  # noqa: E402

IMAGES_PER_PART = 3


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """(data_dir, manual_dir, {part: (X, Y)}) with the builder prepared once for the module."""
  return fake_data.prepare_fake_cifar5m(tmp_path_factory.mktemp("cifar5m"), IMAGES_PER_PART, seed=0)


def test_splits_and_features(prepared):
  data_dir, _, parts = prepared
  builder = tfds.builder("cifar5m", data_dir=data_dir)
  assert isinstance(builder, cifar5m.Cifar5m)
  assert builder.info.splits["train"].num_examples == 5 * IMAGES_PER_PART
  assert builder.info.splits["test"].num_examples == IMAGES_PER_PART
  assert builder.info.features["label"].names[6] == "frog"
  seen = 0
  for ex in tfds.as_numpy(builder.as_dataset(split="train")):
    part, row = int(ex["id"][4:5]), int(ex["id"].split(b"_")[1])
    assert ex["index"] == part * IMAGES_PER_PART + row  # train = part0..part4 concatenated
    np.testing.assert_array_equal(ex["image"], parts[part][0][row])
    assert ex["label"] == parts[part][1][row]
    seen += 1
  assert seen == 15
  test_ids = sorted(ex["id"] for ex in tfds.as_numpy(builder.as_dataset(split="test")))
  assert test_ids == [b"part5_0000000", b"part5_0000001", b"part5_0000002"]


def test_load_through_harness(prepared):
  data_dir, manual_dir, parts = prepared
  train = data.load("cifar5m", split="train", data_dir=data_dir, manual_dir=manual_dir, mirrors="")
  np.testing.assert_array_equal(train.indices, np.arange(15))
  np.testing.assert_array_equal(train.images, np.concatenate([parts[p][0] for p in range(5)]))
  np.testing.assert_array_equal(train.labels, np.concatenate([parts[p][1] for p in range(5)]))
  test = data.load("cifar5m", split="test", size=2, seed=1, data_dir=data_dir, mirrors="")
  np.testing.assert_array_equal(test.images, parts[5][0][test.indices])
  assert test.source == "tfds:cifar5m/1.0.0"


def test_missing_part_is_a_data_error(tmp_path):
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  for part in range(5):  # part5 missing
    np.savez(manual_dir / f"part{part}.npz", X=np.zeros((1, 32, 32, 3), np.uint8), Y=np.zeros(1, np.int64))
  with pytest.raises(data.DataError) as error:
    data.load("cifar5m", split="test", data_dir=str(tmp_path / "data"), manual_dir=str(manual_dir), mirrors="")
  message = str(error.value)
  assert "part5.npz" in message and "HARNESS_MIRRORS" in message and "\n" not in message
  assert not os.path.exists(tmp_path / "data" / "cifar5m" / "1.0.0" / "dataset_info.json")
