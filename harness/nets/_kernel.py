"""`Kernel`: the state of the infinite-width recursion between layers (cf. NT's `Kernel`, Novak et al. 2020).

Three layouts, chosen per spec by what its readout needs (`_evaluate._Plan`):

  VECTOR    nngp, ntk (n1, n2);              var1 (n1,), var2 (n2,)
  DIAGONAL  nngp, ntk (H, W, n1, n2);        var1 (H, W, n1), var2 (H, W, n2)
            same-position covariances only: enough for Flatten (and for Conv, whose map never mixes positions
            p != p' into p == p'); spatial axes lead so stencil shifts move whole contiguous (n1, n2) planes.
  FULL      nngp, ntk (c, H, W, H, W);       var1 (c, H, W), var2 (c, H, W)
            all pixel pairs, for c (x_a, x_b) pairs at a time (GlobalAvgPool needs every pair; NT calls this
            diagonal_spatial=False); var* are the per-pixel variances of x_a and x_b.
  FULL_PAIRS_LAST  nngp, ntk (H, W, H, W, c);  var1 (H, W, c), var2 (H, W, c)
            the same entries with the pairs innermost, for small images: XLA:CPU's loops vectorise along the
            innermost axis, and LLVM leaves a loop of fewer than 16 iterations scalar (an 8-pixel row was).
  SKEWED    nngp, ntk (n, R, W, W);          var1 (c, H, W), var2 (c, H, W)
            the FULL covariance of c pairs cut into n groups of fixed vertical offset p'_h - p_h (harness/nets/
            _skew.py), for nets whose Convs are all stride-1 'SAME'; `skew` maps each group's rows to its
            pair's image rows.

`var*` are the per-input, per-position variances k(x, x)[p, p] (NT's cov1/cov2 with diagonal_spatial), kept
separately because ReLU/Erf need them and they cost n instead of n1 n2.

Spatial tensors may carry a zero `border` around the H x W interior: a Conv reads its taps as slices of the
bordered tensor. Bordering writes the interior into a recycled buffer from two Conv layers back (an in-place
dynamic_update_slice for XLA) instead of padding a fresh copy, which would cost a pass over memory per layer.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from keras import ops

from harness.nets import backends

VECTOR, DIAGONAL, FULL, SKEWED = "vector", "diagonal", "full", "skewed"
FULL_PAIRS_LAST = "full_pairs_last"
# Zero border of an image kernel after a nonlinearity: what a 3x3 SAME Conv and the readouts read. Written in the
# nonlinearity's own loop (`nonlinearity_output`); a Conv that needs another width re-borders (`with_border`).
NONLINEARITY_BORDER = 1
# A nonlinearity whose NNGP and NTK share an angle (ReLU) computes it in a pass of its own when its tensors have
# at most this many elements (they stay in cache, so the extra pass costs little against computing the
# arc-cosine twice: `angle_hold`; a 2^20-element pair, not in cache, is slower so; docs/performance.md).
ANGLE_PASS_MAX_ELEMENTS = 2**18


@dataclasses.dataclass(frozen=True)
class Kernel:
  """NNGP / NTK of a pair of input batches at some layer (module docstring for shapes).

  Attributes, mathematical (what the kernel is; every layer's `kernel_fn` maps these):
    nngp: pair covariance E[f(x1) f(x2)], shaped by `layout` (without `border`: the interior).
    ntk: neural tangent kernel, same shape, or None when it is identically 0 (at the input) or not requested.
    var1, var2: per-input, per-position variances k(x, x)[p, p] of x1 (x_a) and x2 (x_b), shaped by `layout`.
    layout: which covariances are held and how they are laid out (VECTOR, DIAGONAL, FULL, SKEWED: module
      docstring). DIAGONAL holds only same-position entries; FULL and SKEWED hold the same entries, arranged
      differently.
    track_ntk: whether the NTK is requested (then None in `ntk` means 0).
    same: boolean mask of pairs (x1_i, x2_j) that are the same input (VECTOR/DIAGONAL: (n1, n2); FULL(_PAIRS_LAST): (c,);
      SKEWED: (n,), the groups of offset 0 of such pairs), or None when no input appears on both sides; there
      the ReLU angle is set to exactly 0 and Erf's covariance to the variance at equal positions.
    spatial_shape: (H, W) of the image interior; None for VECTOR.
    skew (SKEWED): (rows_a, rows_b, valid), each (n, R): for every group's skewed row the row of p and of p' in
      the (c (H + 1), W) table of its pair's per-row variances (one zero row per pair, for separators), and the
      mask (1.0 or 0.0) of rows inside the image, which affine layers multiply by.
  Attributes, schedule (how the values are held for XLA; no effect on any value):
    border: zeros around the spatial interior of nngp and ntk, for the next Conv's taps (`with_border`).
    scratch: a 1-D zero input, at least as long as any bordered tensor, to write bordered tensors into.
    buffers: the last two generations of bordered buffers, oldest first, recycled in place (`with_border`).
    affine_parts: (nngp, rest) with ntk = nngp + rest exactly as an affine layer computed them, so a ReLU can
      hold the covariance instead of recomputing it (`ntk_rest`).
    output_border: the zero border a nonlinearity gives its outputs (`nonlinearity_output`): NONLINEARITY_BORDER,
      or 0 when the next layer reads only the interior (the evaluator sets it: `Layer.reads_interior`).
  """
  nngp: Any
  ntk: Any
  var1: Any
  var2: Any
  layout: str
  track_ntk: bool
  same: Any = None
  spatial_shape: tuple[int, int] | None = None
  skew: tuple | None = None
  border: int = 0  # schedule fields from here on (class docstring)
  scratch: Any = None
  buffers: tuple = ()
  affine_parts: tuple | None = None
  output_border: int = NONLINEARITY_BORDER

  def replace(self, **changes) -> "Kernel":
    return dataclasses.replace(self, **changes)

  @property
  def is_image(self) -> bool:
    return self.layout != VECTOR

  # --- axes -------------------------------------------------------------------------------------------
  def pair_spatial_axes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Axes of nngp/ntk carrying height and width (two axes each in FULL: p and p' shift together)."""
    if self.layout == SKEWED:
      return ((1,), (2, 3))
    if self.layout == FULL_PAIRS_LAST:
      return ((0, 2), (1, 3))
    return ((0,), (1,)) if self.layout == DIAGONAL else ((1, 3), (2, 4))

  def var_spatial_axes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return ((0,), (1,)) if self.layout in (DIAGONAL, FULL_PAIRS_LAST) else ((1,), (2,))

  def pair_extent(self, spatial_shape) -> tuple[int, int]:
    """Extent of nngp/ntk's spatial axes (without border) for images of `spatial_shape`: the image's, except
    SKEWED rows, which add the separators."""
    if self.layout != SKEWED:
      return tuple(spatial_shape)
    return (int(self.skew[2].shape[1]), spatial_shape[1])

  def row_mask(self):
    """SKEWED: the valid-row mask broadcast against the interior; else None."""
    return None if self.skew is None else self.skew[2][:, :, None, None]

  # --- borders ----------------------------------------------------------------------------------------
  def _trim(self, t):
    if t is None or self.border == 0:
      return t
    b = self.border
    index = [slice(None)] * len(t.shape)
    for axes in self.pair_spatial_axes():
      for axis in axes:
        index[axis] = slice(b, t.shape[axis] - b)
    return t[tuple(index)]

  def interior(self) -> "Kernel":
    """The same kernel without border (a slice, fused by XLA)."""
    if self.border == 0:
      return self
    return self.replace(nngp=self._trim(self.nngp), ntk=self._trim(self.ntk), border=0)

  def with_border(self, width: int) -> "Kernel":
    """The same kernel with exactly `width` zeros around the spatial interior of nngp and ntk.

    The interior is written (dynamic_update_slice) into a buffer XLA can update in place: one bordered two
    materialisations ago (dead by now: the Conv that read it has been consumed), or else a copy of the zero
    `scratch` input. A pad instead (or an update of a zero constant, which XLA turns into a pad) is emitted
    as a branchy per-element loop over the whole bordered tensor, several times slower than the layer.
    """
    if self.border == width:
      return self
    k = self.interior()
    axes = self.pair_spatial_axes()
    shape = _bordered_shape(k.nngp.shape, width, axes)
    older = self.buffers[0] if len(self.buffers) == 2 else ()
    spares = [b for b in older if tuple(b.shape) == shape]
    nngp = _bordered(k.nngp, width, axes, spares[0] if spares else None, self.scratch)
    ntk = None
    if k.ntk is not None:
      ntk = _bordered(k.ntk, width, axes, spares[1] if len(spares) > 1 else None, self.scratch)
    generation = (nngp,) if ntk is None else (nngp, ntk)
    return self.replace(nngp=nngp, ntk=ntk, border=width, buffers=self.buffers[-1:] + (generation,))

  def nonlinearity_output(self, nngp, ntk, var1, var2, shared: bool = True) -> "Kernel":
    """The kernel after a nonlinearity, from the interior values nngp and ntk (None when not tracked) it computed.

    Images get a zero border of `output_border` (NONLINEARITY_BORDER unless the next layer reads only the interior).
    shared: nngp and ntk share expensive terms (a ReLU's angle, unless `angle_hold` already holds it). Then both
    are computed in one loop and held in memory (`one_pass`); images get their zero border (NONLINEARITY_BORDER)
    in that same loop, the stacked values written into the interior of a stacked bordered buffer recycled from
    two nonlinearities back (in place) or cut from `scratch` (see `with_border`), so the next Conv reads its taps
    without a copying pass. Not shared: each is written into a bordered buffer of its own (XLA then reads it
    without copying out a part of the stacked buffer, as it does for the NNGP read at two offsets); both behind
    one barrier.
    """
    if self.layout == VECTOR or self.output_border == 0:  # unbordered, held in memory
      if ntk is None:
        nngp = one_pass(nngp)[0]
      elif shared or self.layout == VECTOR:
        nngp, ntk = one_pass(nngp, ntk)
      else:  # each its own loop, as the bordered ones below
        nngp, ntk = backends.current().barrier(nngp, ntk)
      return self.replace(nngp=nngp, ntk=ntk, var1=var1, var2=var2, border=0)
    width = self.output_border
    older = self.buffers[0] if len(self.buffers) == 2 else ()
    if not shared or ntk is None:
      axes = self.pair_spatial_axes()
      shape = _bordered_shape(nngp.shape, width, axes)
      spares = [b for b in older if tuple(b.shape) == shape]
      outs = [_bordered(t, width, axes, spares[i] if i < len(spares) else None, self.scratch)
              for i, t in enumerate(v for v in (nngp, ntk) if v is not None)]
      outs = backends.current().barrier(*outs)
      return self.replace(nngp=outs[0], ntk=outs[1] if len(outs) > 1 else None, var1=var1, var2=var2,
                          border=width, buffers=self.buffers[-1:] + (tuple(outs),))
    axes = tuple(tuple(a + 1 for a in spatial) for spatial in self.pair_spatial_axes())
    stacked = ops.stack((nngp, ntk))
    shape = _bordered_shape(stacked.shape, width, axes)
    spare = next((b for b in older if tuple(b.shape) == shape), None)
    (out,) = backends.current().barrier(_bordered(stacked, width, axes, spare, self.scratch))
    return self.replace(nngp=out[0], ntk=out[1], var1=var1, var2=var2, border=width,
                        buffers=self.buffers[-1:] + ((out,),))

  def ntk_rest(self):
    """rest with self.ntk == self.nngp + rest exactly (the op that computed it), when an affine layer made this
    kernel's nngp and ntk and nothing replaced nngp since (checked by identity), else None."""
    parts = self.affine_parts
    if parts is None or parts[0] is not self.nngp:
      return None
    return parts[1]

  def angle_hold(self):
    """`hold` for `_kernel_math.relu`: the angle and the pre-activation covariance (or cosine) computed in one pass
    of their own (`one_pass`) when this kernel's tensors are small enough to stay in cache
    (ANGLE_PASS_MAX_ELEMENTS), else None (then the NNGP and NTK are one loop, each half computing the angle).
    Only worth it when the NTK is tracked."""
    if self.ntk is None or not self.track_ntk:
      return None
    interior = self.interior().nngp
    if math.prod(int(n) for n in interior.shape) > ANGLE_PASS_MAX_ELEMENTS:
      return None
    return one_pass

  # --- per-input variances broadcast against nngp -----------------------------------------------------
  def broadcast_vars(self, v1, v2):
    """v1 (of x1 / x_a) and v2 (of x2 / x_b), shaped like var1/var2, broadcast against the interior."""
    if self.layout == VECTOR:
      return v1[:, None], v2[None, :]
    if self.layout == DIAGONAL:
      return v1[:, :, :, None], v2[:, :, None, :]
    if self.layout == SKEWED:
      return skewed_rows(v1, self.skew[0])[:, :, :, None], skewed_rows(v2, self.skew[1])[:, :, None, :]
    if self.layout == FULL_PAIRS_LAST:
      return v1[:, :, None, None, :], v2[None, None, :, :, :]
    return v1[:, :, :, None, None], v2[:, None, None, :, :]

  def same_position_mask(self):
    """Boolean mask (broadcastable to the interior) of entries pairing an input with itself at one position."""
    if self.same is None:
      return None
    if self.layout == VECTOR:
      return self.same
    if self.layout == DIAGONAL:
      return self.same[None, None]
    if self.layout == SKEWED:  # offset 0: p_h = p'_h on every row, so p = p' where p_w = p'_w
      w = self.spatial_shape[1]
      columns = ops.arange(w)
      return ops.logical_and(ops.reshape(self.same, (-1, 1, 1, 1)), (columns[:, None] == columns[None, :])[None, None])
    h, w = self.spatial_shape
    rows = ops.arange(h * w)
    if self.layout == FULL_PAIRS_LAST:
      eye = ops.reshape(rows[:, None] == rows[None, :], (h, w, h, w, 1))
      return ops.logical_and(ops.reshape(self.same, (1, 1, 1, 1, -1)), eye)
    eye = ops.reshape(rows[:, None] == rows[None, :], (1, h, w, h, w))
    return ops.logical_and(ops.reshape(self.same, (-1, 1, 1, 1, 1)), eye)


def skewed_rows(v, index):
  """v (c, H, ...) per-pair images (variances, or the input images) at the skewed rows `index` (n, R) of the
  (c (H + 1), ...) table with a zero row after each pair's rows: (n, R, ...)."""
  c, h, *rest = (int(n) for n in v.shape)
  table = ops.concatenate([v, ops.zeros((c, 1, *rest), dtype=v.dtype)], axis=1)
  n, r = (int(m) for m in index.shape)
  taken = ops.take(ops.reshape(table, (c * (h + 1), *rest)), ops.reshape(index, (-1,)), axis=0)
  return ops.reshape(taken, (n, r, *rest))


def one_pass(*tensors) -> tuple:
  """Same-shaped tensors computed by one loop and held in memory: stacked, behind an optimization barrier, then
  split again by slices (which XLA fuses into their readers as plain loads).

  A nonlinearity's NNGP and NTK share their arc-cosine (or arcsine) terms, which contain a sqrt. XLA:CPU fuses
  no expensive op (sqrt, divide) into two consumers, and fuses cheap ops into every consumer, recomputing them:
  left alone it cuts a ReLU layer into about seven loops, and the loop of the last layer recomputes the cheap
  part of every earlier layer (FC depth 10: 70 loops of up to 733 ops an element). Stacked, both outputs are
  one loop (each element computes the shared terms for the output it belongs to); the barrier keeps the next
  layer from being fused onto it.
  """
  if len(tensors) == 1:
    return backends.current().barrier(tensors[0])
  (stacked,) = backends.current().barrier(ops.stack(tensors))
  return tuple(stacked[i] for i in range(len(tensors)))


def _bordered_shape(shape, width: int, spatial_axes) -> tuple[int, ...]:
  shape = [int(n) for n in shape]
  for axes in spatial_axes:
    for axis in axes:
      shape[axis] += 2 * width
  return tuple(shape)


def _bordered(t, width: int, spatial_axes, spare, scratch):
  """t with `width` zeros around its spatial axes, written into `spare` (a dead bordered buffer of the right
  shape) or into a prefix of the zero vector `scratch`."""
  start = [0] * len(t.shape)
  pad = [(0, 0)] * len(t.shape)
  for axes in spatial_axes:
    for axis in axes:
      start[axis], pad[axis] = width, (width, width)
  shape = _bordered_shape(t.shape, width, spatial_axes)
  if spare is None:
    if scratch is None or math.prod(shape) > scratch.shape[0]:
      return ops.pad(t, pad)
    spare = ops.reshape(scratch[:math.prod(shape)], shape)
  return ops.slice_update(spare, start, t)
