"""Preprocessing: standardization, ZCA (closed forms and limits), average pooling, targets, dtypes."""
import dataclasses

import numpy as np
import pytest
import scipy.linalg

from harness import data

IMAGE_SIDE = 4  # 4x4x3 = 48 features, so 600 images give a full-rank second moment


@dataclasses.dataclass
class FakeSplit:
  images: np.ndarray
  labels: np.ndarray
  num_classes: int = 10


def _correlated_images(n, seed, side=IMAGE_SIDE):
  """uint8 images whose pixels are strongly correlated (a smooth random field plus noise)."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(n, 1, 1, 3)) * 40 + rng.normal(size=(n, side, side, 3)) * 15
  ramp = np.linspace(-1, 1, side)[None, :, None, None] * rng.normal(size=(n, 1, 1, 1)) * 30
  return np.clip(128 + base + ramp, 0, 255).astype(np.uint8), rng.integers(0, 10, n)


def test_standardize_train_zero_mean_unit_var_and_test_uses_train_stats():
  images, labels = _correlated_images(300, seed=0)
  test_images, test_labels = _correlated_images(50, seed=1)
  train, test = data.preprocess(FakeSplit(images, labels), FakeSplit(test_images, test_labels), targets="onehot")
  np.testing.assert_allclose(train.x.mean(axis=(0, 1, 2)), 0, atol=1e-12)
  np.testing.assert_allclose(train.x.std(axis=(0, 1, 2)), 1, rtol=1e-12)
  x = images / 255.0
  mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
  np.testing.assert_allclose(test.x, (test_images / 255.0 - mean) / std, rtol=1e-12)
  raw, _ = data.preprocess(FakeSplit(images, labels), standardize=False)
  np.testing.assert_allclose(raw.x, images / 255.0)


def test_zca_small_reg_whitens_train_and_matches_scipy():
  images, labels = _correlated_images(600, seed=2)
  train, _ = data.preprocess(FakeSplit(images, labels), zca_reg=1e-10, flatten=True)
  second_moment = train.x.T @ train.x / len(train.x)
  np.testing.assert_allclose(second_moment, np.eye(48), atol=1e-6)
  standardized, _ = data.preprocess(FakeSplit(images, labels), flatten=True)
  x = standardized.x
  reg = 0.1
  m = x.T @ x / len(x)
  expected = np.linalg.inv(scipy.linalg.sqrtm(m + reg * np.trace(m) / 48 * np.eye(48)).real)
  np.testing.assert_allclose(data.zca_matrix(x, reg), expected, atol=1e-8)


def test_zca_huge_reg_is_a_rescaling_and_applies_train_transform_to_test():
  images, labels = _correlated_images(200, seed=3)
  test_images, test_labels = _correlated_images(30, seed=4)
  reg = 1e9
  plain_train, plain_test = data.preprocess(FakeSplit(images, labels), FakeSplit(test_images, test_labels))
  zca_train, zca_test = data.preprocess(FakeSplit(images, labels), FakeSplit(test_images, test_labels), zca_reg=reg)
  x = plain_train.x.reshape(200, -1)
  scale = np.sqrt(reg * np.trace(x.T @ x / 200) / x.shape[1])  # W -> I / scale
  np.testing.assert_allclose(zca_train.x * scale, plain_train.x, rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(zca_test.x * scale, plain_test.x, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("n", [20, 47, 48, 100])
def test_zca_matrix_matches_scipy_for_few_and_many_images(n):
  # n < d = 48 takes the Gram-matrix route, n >= d the d x d one; both must equal the closed form
  x = np.random.default_rng(n).normal(size=(n, 48)) @ np.random.default_rng(1).normal(size=(48, 48))
  reg = 0.05
  m = x.T @ x / n
  expected = np.linalg.inv(scipy.linalg.sqrtm(m + reg * np.trace(m) / 48 * np.eye(48)).real)
  np.testing.assert_allclose(data.zca_matrix(x, reg), expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())


def test_zca_rejects_singular_without_reg():
  images, labels = _correlated_images(10, seed=5)  # 10 images, 48 features
  with pytest.raises(ValueError, match="singular"):
    data.preprocess(FakeSplit(images, labels), zca_reg=0.0)


def test_image_norm_rows_zero_mean_unit_norm():
  images, labels = _correlated_images(20, seed=6)
  train, _ = data.preprocess(FakeSplit(images, labels), image_norm=True, flatten=True)
  np.testing.assert_allclose(train.x.mean(axis=1), 0, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(train.x, axis=1), 1, rtol=1e-12)


def test_normalize_images_per_image_scales():
  x = np.random.default_rng(8).normal(2.0, 3.0, (5, 4, 4, 3))
  rms = data.normalize_images(x, scale="rms")
  flat = rms.reshape(5, -1)
  assert rms.shape == x.shape
  np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-12)
  np.testing.assert_allclose(np.mean(flat * flat, axis=1), 1, rtol=1e-12)   # x.x/d = 1
  kept = data.normalize_images(x, center=False, scale="rms").reshape(5, -1)
  np.testing.assert_allclose(kept / np.linalg.norm(kept, axis=1, keepdims=True),
                             x.reshape(5, -1) / np.linalg.norm(x.reshape(5, -1), axis=1, keepdims=True), rtol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(data.normalize_images(x).reshape(5, -1), axis=1), 1, rtol=1e-12)
  with pytest.raises(ValueError, match="scale"):
    data.normalize_images(x, scale="max")


def test_average_pool_by_two_is_mean_of_blocks():
  rng = np.random.default_rng(7)
  images = rng.integers(0, 256, (3, 8, 6, 3), dtype=np.uint8)
  pooled = data.average_pool(images, 2)
  assert pooled.shape == (3, 4, 3, 3)
  for n, i, j, c in [(0, 0, 0, 0), (1, 3, 2, 2), (2, 1, 1, 1)]:
    block = [int(images[n, 2 * i + a, 2 * j + b, c]) for a in (0, 1) for b in (0, 1)]
    assert pooled[n, i, j, c] == sum(block) / 4
  train, _ = data.preprocess(FakeSplit(images, np.zeros(3, int)), standardize=False, downsample=2)
  np.testing.assert_allclose(train.x, pooled / 255.0)
  with pytest.raises(ValueError, match="divide"):
    data.average_pool(images, 4)


def test_targets_onehot_and_centered():
  labels = np.array([0, 3, 9, 3])
  onehot = data.targets_from_labels(labels, 10, "onehot")
  np.testing.assert_array_equal(onehot.argmax(axis=1), labels)
  np.testing.assert_array_equal(onehot.sum(axis=1), 1)
  centered = data.targets_from_labels(labels, 10, "centered_onehot")
  np.testing.assert_allclose(centered.sum(axis=1), 0, atol=1e-15)
  assert centered[1, 3] == pytest.approx(0.9) and centered[1, 0] == pytest.approx(-0.1)
  with pytest.raises(ValueError):
    data.targets_from_labels(labels, 10, "softmax")


def test_dtype_and_flatten():
  images, labels = _correlated_images(30, seed=8)
  train, test = data.preprocess(FakeSplit(images, labels), FakeSplit(images[:5], labels[:5]), dtype="float32",
                                flatten=True, zca_reg=0.1)
  assert train.x.dtype == train.y.dtype == test.x.dtype == np.float32
  assert train.x.shape == (30, 48) and train.y.shape == (30, 10) and test.x.shape == (5, 48)
  np.testing.assert_array_equal(train.labels, labels)
  assert data.preprocess(FakeSplit(images, labels))[1] is None
