"""Preprocessing shared by every experiment (pure numpy; statistics always from the training set).

Order: uint8 -> [0, 1] -> average-pool by `downsample` -> per-channel standardization -> optional per-image
normalization -> optional ZCA whitening -> optional flattening; targets one-hot or centered one-hot.
Everything is computed in float64 and cast to `dtype` at the end.

ZCA, regularized as in Lee et al. 2020 ("Finite Versus Infinite Neural Networks: an Empirical Study",
arXiv 2007.15801; its abstract: "regularized ZCA whitening improves accuracy") and the public JAX
preprocessing code of that line of work: on flattened training features X (n x d), M = X^T X / n, and

    W = (M + zca_reg * (tr M / d) * I)^(-1/2),

i.e. the regularizer is relative to the mean eigenvalue tr(M)/d; features are mapped x -> x W for train and
test alike. zca_reg -> 0 whitens fully (X W has second moment I when M has full rank); zca_reg -> inf makes
W -> I / sqrt(zca_reg tr M / d), a rescaling. `image_norm=True` first makes every flattened image zero-mean
and unit-L2-norm over its features, as that code does before whitening (its `layer_norm` option). Unlike
that code, eigenvalues beyond rank n are not reset when n < d: use zca_reg > 0 there.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from harness import precision

TARGETS = ("onehot", "centered_onehot")
PIXEL_SCALE = 255.0
MIN_STD = 1e-12  # a constant channel is left centred, not divided by ~0


class HasImages(Protocol):
  images: np.ndarray
  labels: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Arrays:
  """Model-ready arrays: x (n, H, W, C) or (n, H*W*C) when flattened, y (n, num_classes) targets."""
  x: np.ndarray
  y: np.ndarray
  labels: np.ndarray


def average_pool(images: np.ndarray, factor: int) -> np.ndarray:
  """Average pooling over non-overlapping factor x factor blocks of (n, H, W, C) images (float64)."""
  x = np.asarray(images, dtype=np.float64)
  if factor == 1:
    return x
  n, h, w, c = x.shape
  if factor < 1 or h % factor or w % factor:
    raise ValueError(f"downsample factor {factor} must be >= 1 and divide the image size {h}x{w}")
  return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def channel_stats(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and (population) standard deviation over examples and pixels of (n, H, W, C)."""
  mean = x_train.mean(axis=(0, 1, 2))
  std = x_train.std(axis=(0, 1, 2))
  return mean, np.maximum(std, MIN_STD)


def normalize_images(x: np.ndarray, center: bool = True, scale: str = "unit") -> np.ndarray:
  """Each image (row of (n, ...)) rescaled on its own: centred to mean 0 (if `center`), then to unit L2 norm
  (scale "unit", Lee et al. 2020 code, before ZCA) or to x.x/d = 1, i.e. norm sqrt(d) (scale "rms", the
  normalisation under which an infinite-width net's input covariance has unit diagonal)."""
  if scale not in ("unit", "rms"):
    raise ValueError(f"scale must be unit or rms, got {scale!r}")
  flat = x.reshape(len(x), -1)
  if center:
    flat = flat - flat.mean(axis=1, keepdims=True)
  norm = np.linalg.norm(flat, axis=1, keepdims=True)
  if scale == "rms":
    norm = norm / np.sqrt(flat.shape[1])
  return (flat / np.maximum(norm, MIN_STD)).reshape(x.shape)


def zca_matrix(x_train: np.ndarray, zca_reg: float) -> np.ndarray:
  """W = (M + r I)^(-1/2), M = X^T X / n, r = zca_reg * tr(M)/d, for flattened (n, d) training features.

  With n < d the eigenpairs come from the n x n Gram matrix X X^T / n = U S U^T (the nonzero eigenvalues of M
  are S, its eigenvectors V = X^T U / sqrt(n S)), so W = r^(-1/2) I + V ((S + r)^(-1/2) - r^(-1/2)) V^T costs
  O(n^2 d) instead of an O(d^3) eigendecomposition (d = 3072 for CIFAR-10).
  """
  if zca_reg < 0:
    raise ValueError(f"zca_reg must be >= 0, got {zca_reg}")
  n, d = x_train.shape
  if n >= d:
    second_moment = x_train.T @ x_train / n
    eigenvalues, eigenvectors = np.linalg.eigh(second_moment)
    eigenvalues = np.maximum(eigenvalues, 0.0) + zca_reg * np.trace(second_moment) / d
    if eigenvalues.min() <= 0:
      raise ValueError(f"ZCA with zca_reg={zca_reg}: the {d}x{d} second moment of {n} images is singular; "
                       "use zca_reg > 0")
    return (eigenvectors * eigenvalues ** -0.5) @ eigenvectors.T
  gram = x_train @ x_train.T / n
  reg = zca_reg * np.trace(gram) / d
  if reg <= 0:
    raise ValueError(f"ZCA with zca_reg={zca_reg}: the {d}x{d} second moment of {n} < {d} images is singular; "
                     "use zca_reg > 0")
  eigenvalues, u = np.linalg.eigh(gram)
  keep = eigenvalues > eigenvalues.max() * n * np.finfo(np.float64).eps
  eigenvalues, u = eigenvalues[keep], u[:, keep]
  v = x_train.T @ u / np.sqrt(n * eigenvalues)
  return np.eye(d) / np.sqrt(reg) + (v * ((eigenvalues + reg) ** -0.5 - reg ** -0.5)) @ v.T


def targets_from_labels(labels: np.ndarray, num_classes: int, kind: str = "centered_onehot") -> np.ndarray:
  """One-hot (n, k) rows, or centered one-hot: one-hot - 1/k, so rows sum to 0 (MSE targets)."""
  if kind not in TARGETS:
    raise ValueError(f"targets must be one of {TARGETS}, got {kind!r}")
  onehot = np.eye(num_classes)[np.asarray(labels)]
  return onehot - 1.0 / num_classes if kind == "centered_onehot" else onehot


def preprocess(train: HasImages, test: HasImages | None = None, *, standardize: bool = True,
               image_norm: bool = False, zca_reg: float | None = None, downsample: int = 1,
               flatten: bool = False, targets: str = "centered_onehot", num_classes: int | None = None,
               dtype: str = "float64") -> tuple[Arrays, Arrays | None]:
  """Model-ready (train, test) arrays; every statistic (channel mean/std, ZCA) is fitted on train only.

  train/test: anything with `images` uint8 (n, H, W, C) and `labels` (a data.Split). num_classes defaults
  to the split's. Returns test as None when no test split is given.
  """
  precision.check_dtype(dtype)
  num_classes = num_classes or getattr(train, "num_classes", None)
  if num_classes is None:
    raise ValueError("num_classes is needed for the targets")
  splits = [train] if test is None else [train, test]
  xs = [average_pool(s.images, downsample) / PIXEL_SCALE for s in splits]
  if standardize:
    mean, std = channel_stats(xs[0])
    xs = [(x - mean) / std for x in xs]
  shapes = [x.shape for x in xs]
  xs = [x.reshape(len(x), -1) for x in xs]
  if image_norm:
    xs = [normalize_images(x) for x in xs]
  if zca_reg is not None:
    whitening = zca_matrix(xs[0], zca_reg)
    xs = [x @ whitening for x in xs]
  if not flatten:
    xs = [x.reshape(shape) for x, shape in zip(xs, shapes)]
  out = [Arrays(x=x.astype(dtype), y=targets_from_labels(s.labels, num_classes, targets).astype(dtype),
                labels=np.asarray(s.labels, dtype=np.int64)) for x, s in zip(xs, splits)]
  return out[0], (out[1] if test is not None else None)
