"""Helpers for the harness.nets tests: compiling on the active backend and independent numpy kernels."""
from __future__ import annotations

import math

import keras
import numpy as np


def compile_fn(fn):
  """XLA-compiled fn on the active backend (what harness.nets runs kernels with)."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  return backends.current().compile(fn)


def to_numpy(x) -> np.ndarray:
  return np.asarray(keras.ops.convert_to_numpy(x))


def assert_same_kernel_when(monkeypatch, setting: str, value, spec, x1, x2, rtol: float = 1e-13):
  """spec.kernel(x1, x2) with harness.nets._evaluate.<setting> = value equals the default's (NNGP and NTK) to rtol
  (compiled functions are cached by shapes, not settings, so the cache is cleared around each call)."""
  from harness.nets import _evaluate  # pylint: disable=import-outside-toplevel
  _evaluate._CACHE.clear()
  default = spec.kernel(x1, x2)
  monkeypatch.setattr(_evaluate, setting, value)
  _evaluate._CACHE.clear()
  patched = spec.kernel(x1, x2)
  _evaluate._CACHE.clear()
  for g in ("nngp", "ntk"):
    np.testing.assert_allclose(patched[g], default[g], rtol=rtol)


def relu_map(k11, k12, k22):
  """Arc-cosine kernel (Cho & Saul 2009, Eq. 6, n = 1) and derivative kernel, in numpy (theta from arccos)."""
  norm = np.sqrt(k11 * k22)
  theta = np.arccos(np.clip(k12 / norm, -1.0, 1.0))
  return norm / (2 * math.pi) * (np.sin(theta) + (math.pi - theta) * np.cos(theta)), (math.pi - theta) / (2 * math.pi)


def erf_map(k11, k12, k22):
  """Arcsine kernel (Williams 1997) and derivative kernel, in numpy."""
  a = (1 + 2 * k11) * (1 + 2 * k22)
  return 2 / math.pi * np.arcsin(2 * k12 / np.sqrt(a)), 4 / math.pi / np.sqrt(a - 4 * k12**2)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
  return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def _conv_geometry(size: int, filter_size: int, stride: int, padding: str) -> tuple[int, int]:
  """(output size, pad before) of a TF-convention convolution (CIRCULAR pads as SAME, with wrapped values)."""
  if padding == "VALID":
    return (size - filter_size) // stride + 1, 0
  out = -(-size // stride)
  return out, max((out - 1) * stride + filter_size - size, 0) // 2


def numpy_cnn_kernels(x1: np.ndarray, x2: np.ndarray, layers: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
  """NNGP and NTK by the formulas of harness/nets/__init__.py, on full (n1, n2, H, W, H, W) arrays.

  An independent, slow reference. layers: ("conv", filter_size, stride, padding, w_std, b_std) with padding SAME,
  VALID or CIRCULAR,
  ("dense", w_std, b_std) (per pixel on images), ("relu",), ("erf",), ("flatten",), ("gap",).
  """
  c = x1.shape[-1]
  k12 = np.einsum("ahwc,bgvc->abhwgv", x1, x2) / c
  k11 = np.einsum("ahwc,agvc->ahwgv", x1, x1) / c  # per-input covariances, all pixel pairs
  k22 = np.einsum("ahwc,agvc->ahwgv", x2, x2) / c
  t12 = np.zeros_like(k12)
  image = True
  for layer in layers:
    kind = layer[0]
    if kind == "conv":
      _, f, s, padding, w, b = layer
      h = k12.shape[2]
      out, before = _conv_geometry(h, f, s, padding)

      def conv(k, lead):
        new = np.zeros(k.shape[:lead] + (out, out, out, out))
        for dh in range(f):
          for dw in range(f):
            rows = [s * i + dh - before for i in range(out)]
            cols = [s * j + dw - before for j in range(out)]
            if padding == "CIRCULAR":  # wrap around: every tap is a valid pixel
              rows, cols = [r % h for r in rows], [q % h for q in cols]
            valid_r = [0 <= r < h for r in rows]
            valid_c = [0 <= q < h for q in cols]
            for i, r in enumerate(rows):
              for j, q in enumerate(cols):
                if not (valid_r[i] and valid_c[j]):
                  continue
                for i2, r2 in enumerate(rows):
                  for j2, q2 in enumerate(cols):
                    if valid_r[i2] and valid_c[j2]:
                      new[..., i, j, i2, j2] += k[..., r, q, r2, q2]
        return new / f**2
      k12, k11, k22, t12 = conv(k12, 2), conv(k11, 1), conv(k22, 1), conv(t12, 2)
      k12, k11, k22 = w**2 * k12 + b**2, w**2 * k11 + b**2, w**2 * k22 + b**2
      t12 = k12 + w**2 * t12
    elif kind == "dense":
      _, w, b = layer
      k12, k11, k22 = w**2 * k12 + b**2, w**2 * k11 + b**2, w**2 * k22 + b**2
      t12 = k12 + w**2 * t12
    elif kind in ("relu", "erf"):
      fn = relu_map if kind == "relu" else erf_map
      if image:
        d1 = np.einsum("ahwhw->ahw", k11)
        d2 = np.einsum("ahwhw->ahw", k22)
        v1, v2 = d1[:, None, :, :, None, None], d2[None, :, None, None, :, :]
        s1, s2 = d1[:, :, :, None, None], d1[:, None, None, :, :]
        r1, r2 = d2[:, :, :, None, None], d2[:, None, None, :, :]
      else:
        d1, d2 = np.diagonal(k11), np.diagonal(k22)
        v1, v2, s1, s2, r1, r2 = d1[:, None], d2[None, :], d1[:, None], d1[None, :], d2[:, None], d2[None, :]
      k12, dot = fn(v1, k12, v2)
      t12 = t12 * dot
      k11, _ = fn(s1, k11, s2)
      k22, _ = fn(r1, k22, r2)
    elif kind == "flatten":
      k12 = np.einsum("abhwhw->ab", k12) / np.prod(k12.shape[2:4])
      t12 = np.einsum("abhwhw->ab", t12) / np.prod(t12.shape[2:4])
      k11 = np.diag(np.einsum("ahwhw->a", k11) / np.prod(k11.shape[1:3]))
      k22 = np.diag(np.einsum("ahwhw->a", k22) / np.prod(k22.shape[1:3]))
      image = False
    elif kind == "gap":
      k12, t12 = k12.mean(axis=(2, 3, 4, 5)), t12.mean(axis=(2, 3, 4, 5))
      k11, k22 = np.diag(k11.mean(axis=(1, 2, 3, 4))), np.diag(k22.mean(axis=(1, 2, 3, 4)))
      image = False
    else:
      raise ValueError(kind)
  return k12, t12
