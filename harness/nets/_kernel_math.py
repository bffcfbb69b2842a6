"""Elementwise and stencil maps of the infinite-width recursion, written with `keras.ops`.

Everything here is traced into one XLA program per kernel call, so these are plain elementwise ops that XLA
fuses into a few passes over the (large) pair-covariance tensors.

* `arccos` / `arcsin`: float64-accurate (within 3 ulp, tests/nets/test_kernel_math.py) from one square root
  and a polynomial. XLA:CPU lowers `acos` / `asin` / `atan2` to scalar libm calls (about ten times the
  rest of a ReLU layer: docs/performance.md); this vectorises. |x| <= 1/2: asin(x) = x (1 + x^2 R(x^2)) with
  R a fitted polynomial (`_ASIN_R`); beyond, the half-angle step asin(x) = pi/2 - 2 asin(sqrt((1 - x)/2))
  of fdlibm's e_asin.c / e_acos.c, which also keeps acos(x) = 2 asin(sqrt((1 - x)/2)) accurate near x = 1.
  Written so that the square root's result is read once: XLA keeps an expensive op (sqrt, divide) in memory
  rather than fuse it into a loop that reads it twice.
* `conv_stencil`: the Conv layer on a covariance, K'[p, p'] = (1/|F|) sum_{d in F} K[p + d, p' + d] (Novak et
  al. 2019, arXiv 1810.05148, Eq. 2.5; NT `stax.Conv`), as shifted slices of a zero-bordered tensor (or, for
  circular padding, of one extended by wrapping around: `wrap_spatial`), one spatial dimension at a time.
* `sum_axes`: a sum over axes as sums of slices (the readouts).
* `relu` / `erf`: the arc-cosine (Cho & Saul 2009, Eq. 6, n = 1) and arcsine (Williams 1997) kernels and
  their derivative kernels.
"""
import functools
import math
import operator
from typing import Sequence

from keras import ops

# asin(x) = x (1 + z R(z)), z = x^2, |x| <= 1/2: R is a degree-12 polynomial (highest power first), a
# Chebyshev least-squares fit on [0, 1/4] of R(z) = (asin(sqrt z)/sqrt z - 1)/z = 1/6 + 3/40 z + 5/112 z^2 + ...
# (the arcsine series, summed in long double; generated once, checked against numpy in
# tests/nets/test_kernel_math.py). Relative error of asin on [-1/2, 1/2]: 1.3e-16 (float64).
_ASIN_R = (0.030245387710908973, -0.017034609773823876, 0.018806530720179494, 0.004935183119040707,
           0.010446655112585641, 0.011459620569793945, 0.013973296613001765, 0.017352244380658223,
           0.022372179767990885, 0.030381943948639332, 0.044642857149171274, 0.07499999999996707,
           0.1666666666666668)
_HALF_PI = math.pi / 2


def _polyval(coefficients: Sequence[float], z):
  """The polynomial (highest power first) at z by Estrin's scheme: pairs a_i + a_{i+1} z, then pairs of those
  with z^2, z^4, ... A ReLU layer's angle loop is bound by latency, not by arithmetic (each iteration does one
  vector of entries, the next waits for scheduler room): Horner's rule chains all 12 multiply-adds, Estrin
  chains 4 plus the squarings (a few percent faster; docs/performance.md)."""
  terms = list(reversed(coefficients))  # lowest power first
  power = z
  while len(terms) > 1:
    terms = [terms[i] + terms[i + 1] * power if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    if len(terms) > 1:
      power = power * power
  return terms[0]


def _constant(value: float, like):
  return ops.convert_to_tensor(value, dtype=like.dtype)


def _choose(condition, if_true: float, if_false: float, like):
  """ops.where on two Python constants, in the dtype of `like` (TF would make them float32)."""
  return ops.where(condition, _constant(if_true, like), _constant(if_false, like))


def _asin_parts(x):
  """(|x| > 1/2, r) with asin(|x|) = r for |x| <= 1/2 and pi/2 - 2 r beyond (fdlibm's half-angle step).

  s = |x| and z = x^2 near 0; s = sqrt((1 - |x|) / 2) and z = s^2 = (1 - |x|) / 2 beyond 1/2; r = s (1 + z R(z)).
  """
  a = ops.abs(x)
  big = a > 0.5
  half_gap = ops.maximum((1.0 - a) * 0.5, 0.0)
  z = ops.where(big, half_gap, a * a)
  s = ops.where(big, ops.sqrt(half_gap), a)
  return big, s * (1.0 + z * _polyval(_ASIN_R, z))  # s read once: see the module docstring on fusion


def arcsin(x):
  """asin(x) for x in [-1, 1], vectorisable (module docstring)."""
  big, r = _asin_parts(x)
  magnitude = _choose(big, _HALF_PI, 0.0, x) + _choose(big, -2.0, 1.0, x) * r
  return _choose(x < 0, -1.0, 1.0, x) * magnitude


def arccos(x):
  """acos(x) for x in [-1, 1], vectorisable; near x = 1 it is 2 asin(sqrt((1 - x)/2)), so theta keeps full
  relative accuracy there (module docstring)."""
  big, r = _asin_parts(x)
  positive = x >= 0
  # |x| > 1/2: acos = 2 r (x > 0) or pi - 2 r (x < 0); |x| <= 1/2: acos = pi/2 - sign(x) r.
  offset = ops.where(big, _choose(positive, 0.0, math.pi, x), _constant(_HALF_PI, x))
  slope = ops.where(big, _choose(positive, 2.0, -2.0, x), _choose(positive, -1.0, 1.0, x))
  return offset + slope * r


def conv_stencil(t, border: int, spatial_axes: Sequence[tuple[int, ...]], filter_shape: Sequence[int],
                 strides: Sequence[int], pads: Sequence[tuple[int, int]], out_shape: Sequence[int]):
  """Mean over filter offsets d of t[p + d, p' + d] (zero outside the image), strided: Conv on a covariance.

  t has `border` zeros around its spatial interior (border >= every pad). spatial_axes[i] lists the axes
  carrying spatial dimension i: one for variances and same-position covariances, two for full (p, p')
  covariances, which shift together. pads[i] = (before, after) and out_shape[i] are the finite Conv's (for
  the skewed layout, out_shape[0] counts its rows). The taps are summed one spatial dimension at a time (the
  sums over the first dimension's offsets, then shifted along the second): XLA still fuses it into one loop
  that recomputes the partial sums per tap (an opt-barrier does not keep them in memory), but the loop is
  faster (docs/performance.md).
  """
  ndim = len(t.shape)
  for axes, size, s, n, (before, _) in zip(spatial_axes, filter_shape, strides, out_shape, pads):
    terms = []
    for d in range(size):
      index = [slice(None)] * ndim
      start = border - before + d
      for axis in axes:
        index[axis] = slice(start, start + (n - 1) * s + 1, s)
      terms.append(t[tuple(index)])
    t = functools.reduce(operator.add, terms)
  return t * (1.0 / math.prod(filter_shape))


def sum_axes(t, axes: Sequence[int]):
  """Sum of t over `axes`, one axis at a time (outermost first, so the loops vectorise along the contiguous inner
  axes) as a sum of its slices, which XLA fuses into one loop. XLA:CPU rewrites a large ops.sum into a
  reduce-window tree emitted as scalar loops (docs/performance.md)."""
  for removed, axis in enumerate(sorted(axes)):
    axis -= removed  # the axes summed before it are gone
    t = functools.reduce(operator.add, [index_axis(t, i, axis) for i in range(int(t.shape[axis]))])
  return t


def index_axis(t, i: int, axis: int):
  """t[..., i, ...] with i at `axis` (a slice, which XLA fuses into its reader)."""
  index = [slice(None)] * len(t.shape)
  index[axis] = i
  return t[tuple(index)]


def pad_spatial(t, width: int, spatial_axes: Sequence[tuple[int, ...]]):
  """t with `width` zeros around its spatial axes (for the small per-input variances)."""
  pad = [(0, 0)] * len(t.shape)
  for axes in spatial_axes:
    for axis in axes:
      pad[axis] = (width, width)
  return ops.pad(t, pad)


def wrap_axis(t, axis: int, n: int, before: int, after: int):
  """t (of size n along `axis`) extended by `before` and `after` entries wrapping around (circular padding):
  entry i of the result is entry (i - before) mod n of t."""
  return ops.take(t, [(i - before) % n for i in range(n + before + after)], axis=axis)


def wrap_spatial(t, width: int, spatial_axes: Sequence[tuple[int, ...]], spatial_shape: Sequence[int]):
  """t extended by `width` entries on both sides of its spatial axes, wrapping around (`wrap_axis`);
  spatial_axes[i] lists the axes of spatial dimension i (of size spatial_shape[i])."""
  for axes, n in zip(spatial_axes, spatial_shape):
    for axis in axes:
      t = wrap_axis(t, axis, n, width, width)
  return t


def relu(k, ntk, norm1, norm2, inv_norm1, inv_norm2, diagonal_mask=None, hold=None, ntk_rest=None):
  """ReLU arc-cosine kernel and NTK (Cho & Saul 2009, Eq. 6; NT `stax.Relu`).

  k: pair covariance; norm* = sqrt(variances), inv_norm* = 1/norm* (0 where the variance is 0), broadcast
  against k. cos(theta) = k / (norm1 norm2), clipped to [-1, 1]; on `diagonal_mask` (an input paired with
  itself at the same position) theta = 0 exactly.
    K'     = norm1 norm2 / (2 pi) (sin theta + (pi - theta) cos theta)
    Theta' = Theta (pi - theta) / (2 pi)
  hold: optional function (theta, x) -> (theta, x) that has them computed once and kept in memory, so that
  K' and Theta' do not each recompute the arc-cosine (harness/nets/_kernel.py, `one_pass`); x is k when
  ntk_rest is given (ntk == k + ntk_rest exactly, as an affine layer computed it) or ntk is k (the first affine
  layer: the input NTK is 0), else cos.
  """
  def cosine(k):
    cos = ops.clip(k * (inv_norm1 * inv_norm2), -1.0, 1.0)
    return cos if diagonal_mask is None else ops.where(diagonal_mask, ops.ones_like(cos), cos)

  cos = cosine(k)
  theta = arccos(cos)
  if hold is not None and ntk is not None and (ntk_rest is not None or ntk is k):
    # The pre-activation covariance is held instead of the cosine: the NTK's loop then reads it once instead of
    # recomputing it (a Conv's 9-tap stencil; after the first Conv, of the input's per-channel products), and the
    # cosine is two multiplies.
    theta, k = hold(theta, k)
    cos = cosine(k)
    ntk = k if ntk_rest is None else k + ntk_rest
  elif hold is not None:
    theta, cos = hold(theta, cos)
  kdot = (math.pi - theta) * (0.5 / math.pi)
  sin = ops.sqrt(ops.maximum((1.0 - cos) * (1.0 + cos), 0.0))
  nngp = (norm1 * norm2) * (sin * (0.5 / math.pi) + kdot * cos)
  if ntk is None:
    return nngp, None
  return nngp, ntk * kdot


def relu_variance(var):
  """ReLU of a variance: E[relu(u)^2] = var / 2 (theta = 0)."""
  return var * 0.5


def erf(k, ntk, var1, var2, diagonal_mask=None):
  """erf arcsine kernel and NTK (Williams 1997; NT `stax.Erf(a=1, b=1, c=0)`); var* broadcast against k.
    K'     = 2/pi asin(2 k / sqrt((1 + 2 var1)(1 + 2 var2)))
    Theta' = Theta 4/pi / sqrt((1 + 2 var1)(1 + 2 var2) - 4 k^2)
  On `diagonal_mask` (an input paired with itself at one position) k is the variance var1 exactly. Rounding
  would otherwise leave k a few ulps off it, and correlation 1 is a repelling fixed point of deep Erf nets
  (e.g. residual branches of scale 1): the error then grows by a factor 1 + (4/pi) / sqrt(1 + 4 q) per layer,
  1e8 after 256 layers.
  """
  if diagonal_mask is not None:
    k = ops.where(diagonal_mask, var1 + ops.zeros_like(k), k)
  a1, a2 = 1.0 + 2.0 * var1, 1.0 + 2.0 * var2
  prod = a1 * a2
  nngp = (2.0 / math.pi) * arcsin(ops.clip(2.0 * k / ops.sqrt(prod), -1.0, 1.0))
  if ntk is None:
    return nngp, None
  return nngp, ntk * ((4.0 / math.pi) / ops.sqrt(prod - 4.0 * k * k))


def erf_variance(var):
  """erf of a variance: E[erf(u)^2] = 2/pi asin(2 var / (1 + 2 var))."""
  return (2.0 / math.pi) * arcsin(2.0 * var / (1.0 + 2.0 * var))
