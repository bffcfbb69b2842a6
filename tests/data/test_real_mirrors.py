"""The real CIFAR-10 mirrors in shared/data (skipped where absent): checksums and known pixels and labels.

Reference values come from the mirrors' READMEs (provenance there): train image 0 is the official frog whose
first red values are 59,43,50,68,98,119,139,145; class counts of the exact subset; cifar10-jpeg has the same
order and labels with lossy pixels (mean absolute error about 5.8/255).
"""
import hashlib
import os

import numpy as np
import pytest

from harness import data

SHARED_DATA = os.environ.get("SHARED_DATA") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))  # as the Makefile
EXACT = os.path.join(SHARED_DATA, "cifar10-exact-subset")
JPEG = os.path.join(SHARED_DATA, "cifar10-jpeg")
EXACT_SHA256 = {  # copied from cifar10-exact-subset/README.md
    "train.npz": "c99149eb43588a6b307d48c0d1ea70740888924ab847ebfe3808a0cc5c0c5bb9",
    "test.npz": "de471d625e63b494dd125efe507d80f64bbdd933d631a1ae328d4e808a118c15",
}
FIRST_RED_VALUES = [59, 43, 50, 68, 98, 119, 139, 145]
TRAIN_COUNTS = [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]
TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
JPEG_MEAN_ABS_ERROR = 5.8  # README: 5.80 on test[:1000], 5.81 on train[:4000]

needs_exact = pytest.mark.skipif(not os.path.isdir(EXACT), reason=f"no mirror at {EXACT}")
needs_jpeg = pytest.mark.skipif(not (os.path.isdir(JPEG) and os.path.isdir(EXACT)),
                                reason=f"no mirrors at {SHARED_DATA}")


@needs_exact
def test_exact_subset_checksums_first_image_and_counts():
  spec = f"cifar10={EXACT}"
  train = data.load("cifar10", split="train", size=100, seed=0, pool=4000, mirrors=spec)
  assert train.checksum == hashlib.sha256(f"train.npz:{EXACT_SHA256['train.npz']}".encode()).hexdigest()
  full = data.load("cifar10", split="train", pool=4000, mirrors=spec)
  assert full.images.shape == (4000, 32, 32, 3)
  assert full.images[0, 0, :8, 0].tolist() == FIRST_RED_VALUES and full.labels[0] == 6
  assert np.bincount(full.labels, minlength=10).tolist() == TRAIN_COUNTS
  np.testing.assert_array_equal(train.images, full.images[train.indices])
  test = data.load("cifar10", split="test", pool=1000, mirrors=spec)
  assert np.bincount(test.labels, minlength=10).tolist() == TEST_COUNTS
  with pytest.raises(data.DataError, match="holds 1000"):
    data.load("cifar10", split="test", size=100, pool=1001, mirrors=spec)
  record = data.describe(train)
  assert record["source"] == f"mirror:{EXACT}" and record["n"] == 100


@needs_jpeg
def test_jpeg_mirror_same_order_and_labels_lossy_pixels():
  jpeg_spec, exact_spec = f"cifar10_jpeg={JPEG}", f"cifar10={EXACT}"
  jpeg = data.load("cifar10_jpeg", split="test", size=200, seed=0, pool=1000, mirrors=jpeg_spec)
  exact = data.load("cifar10", split="test", size=200, seed=0, pool=1000, mirrors=exact_spec)
  np.testing.assert_array_equal(jpeg.indices, exact.indices)
  np.testing.assert_array_equal(jpeg.labels, exact.labels)
  error = np.abs(jpeg.images.astype(float) - exact.images).mean()
  assert 0.5 * JPEG_MEAN_ABS_ERROR < error < 2 * JPEG_MEAN_ABS_ERROR
  mirror = data.Mirror("cifar10_jpeg", JPEG)
  assert mirror.capacity("train") == 50_000
  assert [s.name for s in mirror.shards("train")] == [f"train_{k}.npz" for k in range(5)]
  # official index 10000 is the first row of train_1.npz, read here without the harness
  with np.load(os.path.join(JPEG, "train_1.npz")) as npz:
    row0_image, row0_label = npz["images"][0], npz["labels"][0]
  images, labels = mirror.read("train", [9999, 10000])
  np.testing.assert_array_equal(images[1], row0_image)
  assert labels[1] == row0_label
