"""Vectorised arccos / arcsin against numpy, and the Conv stencil against a direct loop."""
import math

import keras
import numpy as np
import pytest

from harness.nets import _kernel_math
from tests.nets.helpers import compile_fn, to_numpy

SEED = 0
# float64: within a few ulp of numpy (correctly rounded to ~0.5 ulp); float32 likewise in its own ulp.
MAX_ULP = {"float64": 4.0, "float32": 4.0}


def _grid(dtype: str) -> np.ndarray:
  rng = np.random.default_rng(SEED)
  near_one = 1.0 - np.logspace(-17, 0, 20001)
  x = np.concatenate([np.linspace(-1, 1, 400001), near_one, -near_one, rng.uniform(-1, 1, 200000),
                      [-1.0, -0.5, 0.0, 0.5, 1.0, math.nextafter(0.5, 1.0), math.nextafter(0.5, 0.0)]])
  return np.clip(x, -1.0, 1.0).astype(dtype)


def _ulp_error(got: np.ndarray, want: np.ndarray, dtype: str) -> float:
  spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
  return float(np.max(np.abs(got.astype(np.float64) - want) / spacing))


@pytest.mark.backend_portable
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_arccos_and_arcsin_match_numpy_to_a_few_ulp(dtype):
  x = _grid(dtype)
  fn = compile_fn(lambda t: (_kernel_math.arccos(t), _kernel_math.arcsin(t)))
  acos, asin = (to_numpy(v) for v in fn(keras.ops.convert_to_tensor(x)))
  exact = x.astype(np.float64)
  assert _ulp_error(acos, np.arccos(exact), dtype) <= MAX_ULP[dtype]
  assert _ulp_error(asin, np.arcsin(exact), dtype) <= MAX_ULP[dtype]
  assert acos[x == 1.0].max() == 0.0  # theta = 0 exactly at correlation 1
  assert np.all(np.diff(acos[: 400001]) <= 0)  # monotone on the uniform grid


def _stencil_reference(k: np.ndarray, filter_size: int, stride: int, pads, out_shape) -> np.ndarray:
  """K'[p, p'] = mean_d K[s p + d - pb, s p' + d - pb] with zeros outside; k of shape (H, W, H, W)."""
  h, w = k.shape[:2]
  (pbh, _), (pbw, _) = pads
  out = np.zeros(out_shape + out_shape)
  for i in range(out_shape[0]):
    for j in range(out_shape[1]):
      for i2 in range(out_shape[0]):
        for j2 in range(out_shape[1]):
          total = 0.0
          for a in range(filter_size):
            for b in range(filter_size):
              p, q = (stride * i + a - pbh, stride * j + b - pbw), (stride * i2 + a - pbh, stride * j2 + b - pbw)
              if 0 <= p[0] < h and 0 <= p[1] < w and 0 <= q[0] < h and 0 <= q[1] < w:
                total += k[p[0], p[1], q[0], q[1]]
          out[i, j, i2, j2] = total / filter_size**2
  return out


@pytest.mark.backend_portable
@pytest.mark.parametrize("filter_size,stride,pads,out_shape", [
    (3, 1, ((1, 1), (1, 1)), (5, 5)),   # SAME
    (3, 2, ((1, 1), (1, 1)), (3, 3)),   # SAME, stride 2 on 5: total pad 2
    (2, 1, ((0, 1), (0, 1)), (5, 5)),   # SAME with an even filter: the extra zero goes after
    (3, 1, ((0, 0), (0, 0)), (3, 3)),   # VALID
])
def test_conv_stencil_matches_direct_sum(filter_size, stride, pads, out_shape):
  rng = np.random.default_rng(SEED)
  k = rng.standard_normal((5, 5, 5, 5))
  border = 2
  bordered = np.pad(k, [(border, border)] * 4)
  fn = compile_fn(lambda t: _kernel_math.conv_stencil(t, border, ((0, 2), (1, 3)), (filter_size,) * 2,
                                                        (stride,) * 2, pads, out_shape))
  got = to_numpy(fn(keras.ops.convert_to_tensor(bordered)))
  np.testing.assert_allclose(got, _stencil_reference(k, filter_size, stride, pads, out_shape), rtol=1e-13,
                             atol=1e-13)


@pytest.mark.backend_portable
@pytest.mark.parametrize("axes", [(0,), (0, 1), (1, 2, 3), (2, 0), (3,)])
def test_sum_axes_matches_numpy(axes):
  t = np.random.default_rng(SEED).standard_normal((3, 4, 5, 6))
  fn = compile_fn(lambda x: _kernel_math.sum_axes(x, axes))
  np.testing.assert_allclose(to_numpy(fn(keras.ops.convert_to_tensor(t))), t.sum(axis=axes), rtol=1e-13, atol=1e-13)
