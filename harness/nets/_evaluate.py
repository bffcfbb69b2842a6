"""`spec.kernel`: plan the layout, compile once per shape, split the work into chunks, run them.

Plan (from the spec and the input shape):
  * vector inputs: one VECTOR stage, all layers on (n1, n2) blocks;
  * images read out by Flatten: a DIAGONAL stage (same-position covariances (H, W, rows, n2)) up to and
    including the Flatten, then the VECTOR layers after it, in the same compiled call, for steps of a few x1
    rows at a time (a loop inside the call, so one step's tensors stay in cache: DIAGONAL_STEP_ELEMENTS);
  * images read out by GlobalAvgPool: a FULL stage per chunk of c input pairs ((c, H, W, H, W) covariances;
    c chosen so one chunk stays in cache, and so memory does not grow with the block; (H, W, H, W, c), pairs
    innermost, when a chunk holds PAIRS_LAST_MIN_PAIRS pairs: small images) or, when every Conv
    keeps the offset p' - p (stride 1, 'SAME'), a SKEWED stage per step of n groups of fixed vertical offset
    (harness/nets/_skew.py: a few groups stay in cache where one 32x32 pair does not), then the VECTOR
    layers after the pooling on the assembled (n1, n2) block. If those contain a nonlinearity, the
    per-input variances after pooling are needed: the pairs (x, x) are added to the work list (in the
    symmetric case they are part of it already). In the symmetric case (x2 None or equal to x1) only pairs
    i <= j are computed.

Each compiled function has fixed input shapes (the last chunk is padded by repeating its last row), so a
block is compiled once and later same-shaped blocks reuse it (cache keyed by spec, stage, shapes, dtype, get).
On CPU the image chunks go to one thread per core (XLA runs one fused loop per core otherwise; vector blocks are
one call, XLA parallelises those itself); on an accelerator
whole blocks are one call.
"""
from __future__ import annotations

import concurrent.futures
import functools
import operator
import math
import os
import threading
from typing import Sequence

import keras
import numpy as np
from keras import ops

from harness import precision
from harness.nets import backends
from harness.nets import _batching
from harness.nets import _kernel_math
from harness.nets import _skew
from harness.nets._kernel import (DIAGONAL, FULL, FULL_PAIRS_LAST, NONLINEARITY_BORDER, SKEWED, VECTOR, Kernel,
                                  skewed_rows)

KERNELS = _batching.KERNELS
# The sizes below were chosen by A/B runs; their figures, with date, host and commit: docs/performance.md.
# Elements of one (c, H, W, H, W) chunk: 2^17, 1 MiB a tensor in float64, so a chunk stays in a core's L2. (At
# 32x32 one pair is already 1.3M elements: a chunk is one pair whatever this says.)
FULL_CHUNK_ELEMENTS = 2**17
# GlobalAvgPool nets whose Convs are all stride-1 'SAME' run as skewed groups (harness/nets/_skew.py) instead of
# FULL chunks (`SKEWED_GAP`): a 32x32 pair is 32 groups of 33 x 32 x 32, so a step of a few groups stays in cache
# where one FULL pair (2^20 elements, 8 MiB) did not. Elements of one step: 2^16 (1-4 groups at 32x32; steps
# past ANGLE_PASS_MAX_ELEMENTS lose the angle pass).
SKEW_STEP_ELEMENTS = 2**16
SKEWED_GAP = True
# FULL steps of at least this many pairs (images of at most 9x9 pixels at FULL_CHUNK_ELEMENTS) hold the pairs as the
# innermost axis (FULL_PAIRS_LAST): LLVM does not vectorise a loop of fewer than 16 iterations, so an 8-pixel row
# innermost (FULL or SKEWED) ran scalar code.
PAIRS_LAST_MIN_PAIRS = 16
# Elements of one vector (rows, n2) block call: bounds memory for big tiles (64 MiB per tensor in float64).
BLOCK_ELEMENTS = 2**23
# Elements of one step's (H, W, rows, n2) same-position covariances on CPU (1 MiB in float64, in cache; steps
# inside one call per core; accelerators take BLOCK_ELEMENTS).
DIAGONAL_STEP_ELEMENTS = 2**17

# DIAGONAL (Flatten) nets with at most this many nonlinearities before the readout border their tensors by a pad
# instead of writing them into a copy of the zero scratch: each step copied the scratch into the first two
# generations of bordered buffers (later ones are recycled in place), a third of a depth-2 8x8 block's time, while a
# pad fuses the nonlinearity into a loop over the bordered buffer, a little slower per layer. A/B: pad +29-52% at
# depth 2, +9-18% at depth 4, -4 to -8% at depth 10 (16x16, 32x32) (docs/performance.md).
PAD_MAX_NONLINEARITIES = 4
# A nonlinearity right before a readout that sums only the interior (Flatten on DIAGONAL, GlobalAvgPool on
# FULL_PAIRS_LAST) leaves its outputs unbordered where bordering would be a pad (`_unbordered_output`): the pad loop
# wrote 2.4x the entries of an 8x8 interior and the readout read them all. A/B: CNN-GAP 8x8 depth 2 +14-17%, depth
# 10 +3-6%, CNN-Flatten 8x8 depth 2 +10-13%; values identical (docs/performance.md).
UNBORDERED_READOUT_INPUTS = True
# Vector inputs on CPU whose Gram is smaller than they are (n1 n2 <= (n1 + n2) d): the input Gram by BLAS on the host
# (`_host_gram_kernel`; converting the inputs for the compiled program cost more than the matmul); else (and on
# accelerators) in the compiled program (a large Gram costs more to convert than the inputs, and OpenBLAS's threads
# spin after it while XLA's want the cores: docs/performance.md).
HOST_GRAM = True
# Image inputs with at most this many channels get their input covariance as elementwise products
# (`_pair_products`), more as an einsum.
SMALL_CHANNELS = 8
_CACHE: dict = {}
_ZEROS: dict = {}
_CACHE_LOCK = threading.Lock()


def _large_steps() -> bool:
  """Steps of BLOCK_ELEMENTS instead of cache-sized ones: on an accelerator (each step is several kernel launches)
  and when running op by op (`eager()`: each step costs a dispatch per op)."""
  backend = backends.current()
  return backend.has_accelerator() or backend.running_eagerly()


def host_threads() -> int:
  """Worker threads for CPU execution: the cores this process may use (1 on an accelerator)."""
  if backends.current().has_accelerator():
    return 1
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not Linux
    return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------------------
# Plan
# ------------------------------------------------------------------------------------------------------
class _Plan:
  """Which layers run in which layout (module docstring), from what the spec's leaves answer (the planner
  protocol of harness/nets/_spec.py: no layer class is named here)."""

  def __init__(self, spec, input_shape: tuple, repeat: tuple[int, int, tuple[int, ...]] | None = None):
    """repeat: (start, stop, depths) for a depth profile (`kernel_by_depth`): leaves[start:stop] is a block applied
    d times for every d in depths (ascending), and the layers after it read out each of those depths; None: every
    leaf once."""
    out = spec.check_shapes(input_shape)
    if len(out) != 1:
      raise ValueError(f"{spec!r} ends with an image {out}; add Flatten() or GlobalAvgPool() before the readout")
    leaves = spec.leaves()
    self.leaves = leaves
    self.describe = spec.describe() + ("" if repeat is None else f" repeat{repeat}")
    self.repeat = repeat
    self.taps = 1 if repeat is None else len(repeat[2])
    self.is_image = len(input_shape) == 3
    self.readout = None
    if self.is_image:  # the shape check guarantees a readout
      index = next(i for i, leaf in enumerate(leaves) if leaf.readout_layout is not None)
      self.spatial, self.readout, self.vector = leaves[:index], leaves[index], leaves[index + 1:]
      self.split = index + 1  # leaves[:split] run per chunk of pairs (FULL/SKEWED), the rest on (n1, n2) blocks
    else:
      self.spatial, self.vector = [], leaves
      self.split = 0
    if repeat is not None and self.is_image and repeat[0] < self.split <= repeat[1]:
      raise ValueError("the repeated block must not contain the readout (Flatten or GlobalAvgPool)")
    self.layout = self.readout.readout_layout if self.is_image else VECTOR
    self.vector_needs_variances = any(leaf.has_nonlinearity() for leaf in self.vector)
    spatial_shape = input_shape[:2]
    self.input_border = self.spatial[0].border(spatial_shape) if self.spatial else 0
    # Widest zero border any spatial tensor gets (a Conv's largest pad; the nonlinearities' and readouts'
    # NONLINEARITY_BORDER), for the scratch size.
    self.max_border = max([NONLINEARITY_BORDER] + [leaf.max_border() for leaf in self.spatial])
    self.spatial_nonlinearities = sum(leaf.has_nonlinearity() for leaf in self.spatial)
    # Readouts of every pixel pair whose spatial layers all keep the offset p'_h - p_h: the skewed layout with this
    # many separator rows, else None.
    self.separator = None
    if self.layout == FULL:
      separators = [leaf.skew_separator(spatial_shape) for leaf in self.spatial]
      self.separator = None if None in separators else max([0] + separators)

  def taps_in(self, first: int, last: int) -> int:
    """Readouts of the layers leaves[first:last]: one per depth where the profile's block lies there, else one."""
    return self.taps if self.repeat is not None and first <= self.repeat[0] < last else 1

  def scratch_size(self, pair_elements_per_position: int, spatial_shape) -> int:
    """Elements of the zero scratch vector: the largest bordered nngp and ntk, stacked (spatial sizes only shrink)."""
    h, w = spatial_shape
    b = self.max_border
    grid = (h + 2 * b) * (w + 2 * b)
    return 2 * pair_elements_per_position * (grid if self.layout == DIAGONAL else grid * grid)

  def skewed_scratch_size(self, groups: int, spatial_shape) -> int:
    """Elements of the zero scratch vector for steps of `groups` skewed groups (as `scratch_size`)."""
    h, w = spatial_shape
    b = self.max_border
    return 2 * groups * (_skew.rows(h, self.separator) + 2 * b) * (w + 2 * b) ** 2


# ------------------------------------------------------------------------------------------------------
# Traced computations (keras.ops; compiled by the backend)
# ------------------------------------------------------------------------------------------------------
def _run(layers, k: Kernel) -> Kernel:
  for i, layer in enumerate(layers):
    if i + 1 < len(layers) and _unbordered_output(k, layers[i + 1]):
      k = layer.kernel_fn(k.replace(output_border=0)).replace(output_border=NONLINEARITY_BORDER)
    else:
      k = layer.kernel_fn(k)
  return k


def _unbordered_output(k: Kernel, next_layer) -> bool:
  """Whether a nonlinearity on k leaves its outputs unbordered (`Kernel.output_border`, UNBORDERED_READOUT_INPUTS):
  the next layer reads only their interior, and bordering would be a pad (with a zero scratch to write into, the
  bordered buffer is recycled in place, and deep CNN-Flatten nets measured no gain)."""
  return (UNBORDERED_READOUT_INPUTS and k.layout != VECTOR and next_layer.reads_interior(k.layout)
          and (k.scratch is None or int(k.scratch.shape[0]) == 0))


# Kernel fields a repeated block changes (the loop's carry); the others are fixed for the whole call.
_CARRIED = ("nngp", "ntk", "var1", "var2")


def _fields(k: Kernel) -> list[str]:
  return [name for name in _CARRIED if getattr(k, name) is not None]


def _run_taps(plan: "_Plan", first: int, last: int, k: Kernel) -> list[Kernel]:
  """plan.leaves[first:last] on k: one kernel, or, when the depth profile's repeated block lies in this range, the
  kernel read out (the layers after the block) at each depth of the profile.

  The blocks run as one loop in the compiled program, whatever the depths: its compile time depends neither on
  the depth nor on how many depths are read out (an unrolled 50-block CNN compiles for minutes; a loop per
  segment between two readouts took a second each). The first block is applied before the loop, which brings
  the kernel to the form the block returns (zero border, which fields are None); each iteration then applies the
  block and, at a requested depth (a table lookup, `ops.cond`), writes the readout into that depth's slot of
  the loop's outputs. Iterations start without recycled buffers (`Kernel.with_border`) or held affine parts:
  schedule fields, no effect on any value.
  """
  layers = plan.leaves[first:last]
  if plan.repeat is None or not first <= plan.repeat[0] < last:
    return [_run(layers, k)]
  start, stop, depths = plan.repeat[0] - first, plan.repeat[1] - first, plan.repeat[2]
  block, tail = layers[start:stop], layers[stop:]
  k = _run(layers[:start], k)
  taps = [_run(tail, k)] if depths[0] == 0 else []
  later = [d for d in depths if d > 0]
  if not later:
    return taps
  k = _run(block, k).replace(buffers=(), affine_parts=None)  # depth 1
  first_tap = _run(tail, k)
  if later == [1]:
    return taps + [first_tap]
  k_fields, tap_fields = _fields(k), _fields(first_tap)
  slots = {depth: i for i, depth in enumerate(later)}
  slot_of_depth = ops.convert_to_tensor([slots.get(d, -1) for d in range(later[-1] + 1)], dtype="int32")

  def stacked(value, depth_slot):  # (taps, ...) with value in one slot, zeros elsewhere
    return ops.stack([value if i == depth_slot else ops.zeros_like(value) for i in range(len(later))])

  def body(i, carry):
    state, outs = carry
    out = _run(block, k.replace(**dict(zip(k_fields, state))))
    if out.border != k.border or _fields(out) != k_fields:
      raise ValueError("a repeated block must return the kernel in the form it takes (border and fields)")
    slot = ops.take(slot_of_depth, i + 1)

    def write():
      readout = _run(tail, out)
      hit = ops.equal(ops.arange(len(later)), slot)
      return tuple(ops.where(ops.reshape(hit, (-1,) + (1,) * (len(o.shape) - 1)), getattr(readout, f)[None], o)
                   for f, o in zip(tap_fields, outs))

    shapes = [tuple(o.shape) for o in outs]
    outs = ops.cond(slot >= 0, write, lambda: tuple(outs))
    # TF's cond loses the static shapes the loop needs: restated (no data moves)
    return tuple(getattr(out, f) for f in k_fields), tuple(ops.reshape(o, shape) for o, shape in zip(outs, shapes))

  init = (tuple(getattr(k, f) for f in k_fields),
          tuple(stacked(getattr(first_tap, f), slots.get(1, -1)) for f in tap_fields))
  _, outs = ops.fori_loop(1, later[-1], body, init)
  return taps + [first_tap.replace(**{f: o[i] for f, o in zip(tap_fields, outs)}, buffers=(), affine_parts=None)
                 for i in range(len(later))]


def _outputs(k: Kernel, names: tuple[str, ...]):
  values = {"nngp": k.nngp, "ntk": k.ntk if k.ntk is not None else ops.zeros_like(k.nngp)}
  return tuple(values[name] for name in names)


def _tap_outputs(kernels: Sequence[Kernel], names: tuple[str, ...]) -> tuple:
  """The outputs of each kernel in turn: taps x names, flat."""
  return tuple(o for k in kernels for o in _outputs(k, names))


def _pad_images(x, border: int):
  return ops.pad(x, [(0, 0), (border, border), (border, border), (0, 0)]) if border else x


def _block_input(x1, x2, layout: str, track_ntk: bool, same, border: int) -> Kernel:
  """Input covariance x.x'/fan_in (per pixel pair, summed over channels), NTK 0.

  Vectors: x1 (rows, d), x2 (n2, d). Images channel-first and batch-last (`channels_first`): x1 (C, H, W, rows),
  x2 (C, H, W, n2), so that the covariance's innermost axis (x2's images) is contiguous in x2 and its loop
  vectorises (from NHWC images it read one channel in C, in scalar code). Images are zero-padded by `border` first,
  so the covariance comes out with the zero border the first Conv reads (a matmul output, already in memory),
  instead of being padded afterwards.
  """
  if layout == VECTOR:
    scale = 1.0 / x1.shape[-1]
    nngp = ops.matmul(x1, ops.transpose(x2)) * scale
    return Kernel(nngp=nngp, ntk=None, var1=ops.sum(x1 * x1, axis=-1) * scale, var2=ops.sum(x2 * x2, axis=-1) * scale,
                  layout=VECTOR, track_ntk=track_ntk, same=same)
  channels, h, w = x1.shape[0], x1.shape[1], x1.shape[2]
  scale = 1.0 / channels
  nngp = _pair_products(_pad_images(x1, border), _pad_images(x2, border), "chwi,chwj->hwij",
                        lambda a, b: a[:, :, :, None] * b[:, :, None, :], channel_axis=0)
  nngp = nngp * scale
  var1 = ops.sum(x1 * x1, axis=0) * scale
  var2 = ops.sum(x2 * x2, axis=0) * scale
  return Kernel(nngp=nngp, ntk=None, var1=var1, var2=var2, layout=DIAGONAL, track_ntk=track_ntk, same=same,
                spatial_shape=(h, w), border=border)


def channels_first(images: np.ndarray) -> np.ndarray:
  """(..., n, H, W, C) images as (..., C, H, W, n), contiguous (the layout `_block_input` reads)."""
  lead = images.ndim - 4
  axes = tuple(range(lead)) + (lead + 3, lead + 1, lead + 2, lead)
  return np.ascontiguousarray(images.transpose(axes))


def _pair_products(x1, x2, subscripts: str, outer, channel_axis: int = -1):
  """sum over channels c (along `channel_axis`) of outer(x1[c], x2[c]), held in memory: an einsum, or for few
  channels (SMALL_CHANNELS) C elementwise products. XLA:CPU runs the einsum's contraction over 3 channels as a batch
  of tiny matrix products, slower than a layer."""
  channels = x1.shape[channel_axis]
  if channels > SMALL_CHANNELS:
    return ops.einsum(subscripts, x1, x2)
  terms = [outer(_kernel_math.index_axis(x1, c, channel_axis), _kernel_math.index_axis(x2, c, channel_axis))
           for c in range(channels)]
  return backends.current().barrier(functools.reduce(operator.add, terms))[0]


def _full_input(xa, xb, track_ntk: bool, same, border: int, pairs_last: bool = False) -> Kernel:
  """Input covariance of c image pairs: FULL from (c, H, W, C) images, or FULL_PAIRS_LAST from (C, H, W, c) ones
  (channels first, pairs last: the layout's innermost axis)."""
  h, w = xa.shape[1], xa.shape[2]
  if pairs_last:
    scale = 1.0 / xa.shape[0]
    nngp = _pair_products(_pad_images(xa, border), _pad_images(xb, border), "khwc,kgvc->hwgvc",
                          lambda a, b: a[:, :, None, None, :] * b[None, None, :, :, :], channel_axis=0) * scale
    return Kernel(nngp=nngp, ntk=None, var1=ops.sum(xa * xa, axis=0) * scale, var2=ops.sum(xb * xb, axis=0) * scale,
                  layout=FULL_PAIRS_LAST, track_ntk=track_ntk, same=same, spatial_shape=(h, w), border=border)
  scale = 1.0 / xa.shape[-1]
  nngp = _pair_products(_pad_images(xa, border), _pad_images(xb, border), "chwk,cgvk->chwgv",
                        lambda a, b: a[:, :, :, None, None] * b[:, None, None, :, :]) * scale
  return Kernel(nngp=nngp, ntk=None, var1=ops.sum(xa * xa, axis=-1) * scale, var2=ops.sum(xb * xb, axis=-1) * scale,
                layout=FULL, track_ntk=track_ntk, same=same, spatial_shape=(h, w), border=border)


def _skewed_input(xa, xb, index_a, index_b, valid, track_ntk: bool, same, border: int) -> Kernel:
  """Input covariance of c image pairs in the skewed layout: (n, R, W, W) with `border` zeros around (rows from the
  (c (H + 1), W, C) tables of each pair's image rows and a zero row, harness/nets/_skew.py)."""
  h, w, channels = (int(n) for n in xa.shape[1:])

  def rows(x, index):  # bordered rows: pair 0's zero row (index h) above and below
    taken = skewed_rows(x, ops.pad(index, [(0, 0), (border, border)], constant_values=h))
    return ops.pad(taken, [(0, 0), (0, 0), (border, border), (0, 0)]) if border else taken

  scale = 1.0 / channels
  nngp = _pair_products(rows(xa, index_a), rows(xb, index_b), "nrwk,nrvk->nrwv",
                        lambda a, b: a[:, :, :, None] * b[:, :, None, :]) * scale
  return Kernel(nngp=nngp, ntk=None, var1=ops.sum(xa * xa, axis=-1) * scale, var2=ops.sum(xb * xb, axis=-1) * scale,
                layout=SKEWED, track_ntk=track_ntk, same=same, spatial_shape=(h, w), border=border,
                skew=(index_a, index_b, _held(valid)))


def _held(mask):
  """A per-step 0/1 mask as sqrt(mask) (the same values), so that XLA, which fuses no expensive op (sqrt) into
  several consumers, computes it once per step instead of re-slicing it out of the per-call array (a
  dynamic-slice) for every element of every loop that reads it (several times slower)."""
  return ops.sqrt(mask)


def _skewed_fn(plan: _Plan, names: tuple[str, ...], masked: bool, pairs_a_unit: int):
  """Units of c image pairs (x_a, x_b) through the spatial layers and GlobalAvgPool, each unit in `split` steps of
  n = c m skewed groups (m groups of each pair; the step's row maps index_a, index_b, valid are the same for
  every unit): (units, c) per kernel. Both loops run inside the program, as in `_full_fn`."""
  track_ntk = "ntk" in names

  def fn(xa, xb, index_a, index_b, valid, scratch, *same):
    def unit(args):
      def step(step_args):
        k = _skewed_input(args[0], args[1], step_args[0], step_args[1], step_args[2], track_ntk,
                          step_args[3] if masked else None, plan.input_border)
        out = _tap_outputs(_run_taps(plan, 0, plan.split, k.replace(scratch=scratch)), names)
        return tuple(ops.sum(ops.reshape(o, (pairs_a_unit, -1)), axis=1) for o in out)  # each pair's groups
      per_step = ops.map(step, (index_a, index_b, valid) + ((args[2],) if masked else ()))
      return tuple(ops.sum(o, axis=0) for o in per_step)
    return ops.map(unit, (xa, xb) + tuple(same))
  return fn


def _block_fn(plan: _Plan, names: tuple[str, ...], masked: bool):
  """x1 rows vs x2, all layers, one call. Vectors: x1 (rows, d). DIAGONAL images (`channels_first`): x1
  (steps, C, H, W, rows), x2 (C, H, W, n2) and mask (steps, rows, n2), the steps a loop inside the compiled
  program (as in `_full_fn`), each step's (H, W, rows, n2) tensors small enough to stay in cache; outputs
  (steps, rows, n2)."""
  track_ntk = "ntk" in names

  def block(x1, x2, scratch, mask):
    k = _block_input(x1, x2, plan.layout, track_ntk, mask, plan.input_border)
    kernels = _run_taps(plan, 0, plan.split, k.replace(scratch=scratch))
    return _tap_outputs([out for k in kernels for out in _run_taps(plan, plan.split, len(plan.leaves), k)], names)

  def fn(x1, x2, scratch, *mask):
    if not plan.is_image:
      return block(x1, x2, scratch, mask[0] if masked else None)
    return ops.map(lambda args: block(args[0], x2, scratch, args[1] if masked else None), (x1,) + tuple(mask))
  return fn


def _full_fn(plan: _Plan, names: tuple[str, ...], masked: bool, pairs_last: bool):
  """m steps of c pairs (x_a, x_b) of images through the spatial layers and GlobalAvgPool: (m, c) per kernel.

  The steps are a loop inside the compiled program, so its working memory is allocated once per call (fresh
  pages cost a page fault each, which is slow on virtual machines) and stays in cache between steps.
  Images (m, c, H, W, C) of each pair, or with pairs_last a table of the images (n, C, H, W) and each step's
  indices into it (m, c): each step gathers its pairs' images, and the covariances are FULL_PAIRS_LAST.
  """
  track_ntk = "ntk" in names

  def pairs(xa, xb, same, scratch):
    k = _full_input(xa, xb, track_ntk, same, plan.input_border, pairs_last)
    return _tap_outputs(_run_taps(plan, 0, plan.split, k.replace(scratch=scratch)), names)

  def fn(xa, xb, scratch, *mask):
    return ops.map(lambda args: pairs(args[0], args[1], args[2] if masked else None, scratch), (xa, xb) + tuple(mask))

  def gathered(table, index_a, index_b, scratch, *mask):
    def step(args):
      xa, xb = (ops.transpose(ops.take(table, i, axis=0), (1, 2, 3, 0)) for i in args[:2])  # (C, H, W, c)
      return pairs(xa, xb, args[2] if masked else None, scratch)
    return ops.map(step, (index_a, index_b) + tuple(mask))
  return gathered if pairs_last else fn


def _vector_fn(plan: _Plan, names: tuple[str, ...], masked: bool, with_ntk: bool):
  """The layers after GlobalAvgPool (or all of an FC net's, after the host Gram) on assembled (n1, n2) blocks;
  with_ntk False: the input NTK is 0 (not passed)."""
  track_ntk = "ntk" in names

  def fn(nngp, *rest):
    ntk, (var1, var2, *mask) = (rest[0], rest[1:]) if with_ntk else (None, rest)
    k = Kernel(nngp=nngp, ntk=ntk if track_ntk else None, var1=var1, var2=var2, layout=VECTOR, track_ntk=track_ntk,
               same=mask[0] if masked else None)
    return _tap_outputs(_run_taps(plan, plan.split, len(plan.leaves), k), names)
  return fn


def _compiled(key: tuple, make):
  with _CACHE_LOCK:
    fn = _CACHE.get(key)
    if fn is None:
      fn = _CACHE[key] = backends.current().compile(make())
    return fn


# ------------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------------
def _zeros(size: int, dtype: str):
  """The zero scratch vector as a backend tensor, made once per size and dtype: it is only read (a copy of a
  zero array every call costs a page fault per 4 KiB and a conversion; CNN-Flatten 32x32: 12 MiB a call)."""
  key = (keras.backend.backend(), size, dtype)
  with _CACHE_LOCK:
    if key not in _ZEROS:
      _ZEROS.clear()  # keep only the latest: a large one should not stay alive for good
      _ZEROS[key] = ops.zeros((size,), dtype=dtype)
    return _ZEROS[key]


def _tensor_dtype(a: np.ndarray, dtype: str) -> str:
  """Floating inputs in the kernel dtype; masks and indices as they are."""
  if a.dtype == bool:
    return "bool"
  return "int32" if np.issubdtype(a.dtype, np.integer) else dtype


def _call(fn, arrays, dtype):
  backend = backends.current()
  tensors = [a if not isinstance(a, np.ndarray) else backend.to_tensor(a, _tensor_dtype(a, dtype)) for a in arrays]
  return [backend.to_numpy(t) for t in fn(*tensors)]


def _writable(a: np.ndarray) -> np.ndarray:
  """a, or a copy of it when read-only (JAX's outputs are read-only views): the caller owns the kernel arrays."""
  return a if a.flags.writeable else a.copy()


def _joined(parts: list[np.ndarray]) -> np.ndarray:
  """The parts' rows, concatenated; a lone part as it is (copying FC's 1000 x 1000 outputs again cost 1.2 ms each,
  12% of the call; `_writable` copies a read-only result once, at the end)."""
  return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _map(fn, jobs, threads: int):
  if threads <= 1 or len(jobs) <= 1:
    return [fn(job) for job in jobs]
  with concurrent.futures.ThreadPoolExecutor(min(threads, len(jobs))) as pool:
    return list(pool.map(fn, jobs))


def kernel(spec, x1, x2=None, get: str | Sequence[str] = KERNELS, dtype: str = "float64"):
  """`spec.kernel` (harness/nets/_spec.py `Layer.kernel`) of a harness.nets layer `spec`."""
  (out,) = _evaluate(spec, None, x1, x2, get, dtype)
  return out


def kernel_by_depth(template, repeat: tuple[int, int, tuple[int, ...]], x1, x2=None,
                    get: str | Sequence[str] = KERNELS, dtype: str = "float64") -> dict:
  """{depth: kernels} of `template` (head, block once, readout) with its leaves[start:stop] repeated `depth` times,
  for each depth of repeat = (start, stop, depths), from one pass (harness/nets/depth_profile.py checks the
  arguments)."""
  return dict(zip(repeat[2], _evaluate(template, repeat, x1, x2, get, dtype), strict=True))


def _evaluate(spec, repeat, x1, x2, get, dtype) -> list:
  """The requested kernels ({name: array}, or the array when `get` is a name) of spec, once per tap (one, or one
  per depth of `repeat`: `_Plan`)."""
  requested = _batching.canonical_get(get, unique=True)
  names = ("nngp", "ntk") if "ntk" in requested else ("nngp",)  # the NTK recursion needs the NNGP
  precision.check_dtype(dtype)
  x1 = np.asarray(x1, dtype=dtype)
  symmetric = x2 is None or x2 is x1
  x2 = x1 if x2 is None else np.asarray(x2, dtype=dtype)
  if x1.shape[1:] != x2.shape[1:]:
    raise ValueError(f"x1 and x2 must have the same per-example shape, got {x1.shape[1:]} and {x2.shape[1:]}")
  if not symmetric and x1.shape == x2.shape and np.array_equal(x1, x2):
    symmetric = True
  plan = _Plan(spec, x1.shape[1:], repeat)
  backend = backends.current()
  if dtype == "float64":
    backend.enable_float64()
  with backend.kernel_precision():
    if plan.layout == FULL:
      result = _full_kernel(plan, x1, x2, symmetric, names, dtype)
    else:
      result = _block_kernel(plan, x1, x2, symmetric, names, dtype)
  taps = []
  for tap in _by_tap(result, len(names)):
    out = dict(zip(names, (_writable(a) for a in tap)))
    taps.append(out[get] if isinstance(get, str) else {name: out[name] for name in requested})
  return taps


def _by_tap(flat: list, per_tap: int) -> list[list]:
  """Outputs in the traced functions' order (taps x names, flat) as one list per tap."""
  return [flat[i:i + per_tap] for i in range(0, len(flat), per_tap)]


def _host_gram_kernel(plan, x1, x2, symmetric, names, dtype):
  """Vector inputs on CPU: the input covariance x1 x2^T / d is one BLAS call on the host arrays, and only it and
  the norms go to the compiled recursion (the one run after pooling): converting the inputs cost more than the
  matmul (FC 64x64 block, 3072-dim: 3 MiB a call). The squared norms by np.vecdot (a third of np.einsum's time);
  the input NTK, 0, is not passed."""
  d = x1.shape[1]
  nngp = (x1 @ x2.T) * (1.0 / d)
  var1 = np.vecdot(x1, x1) * (1.0 / d)
  var2 = var1 if symmetric else np.vecdot(x2, x2) * (1.0 / d)
  return _vector_layers(plan, nngp, None, var1, var2, symmetric, names, dtype)


def _vector_layers(plan, nngp, ntk, var1, var2, symmetric, names, dtype):
  """plan.vector (the layers on (n1, n2) blocks) on given input kernels, in one compiled call (`_vector_fn`); ntk
  None: the input NTK is 0."""
  n1, n2 = nngp.shape
  with_ntk = ntk is not None
  key = (plan.describe, "vector_layers", keras.backend.backend(), (n1, n2), dtype, names, symmetric, with_ntk)
  fn = _compiled(key, lambda: _vector_fn(plan, names, symmetric, with_ntk))
  arrays = [nngp] + ([ntk] if with_ntk else []) + [var1, var2] + ([np.eye(n1, dtype=bool)] if symmetric else [])
  return _call(fn, arrays, dtype)


def _block_kernel(plan, x1, x2, symmetric, names, dtype):
  n1, n2 = len(x1), len(x2)
  if (not plan.is_image and HOST_GRAM and n1 * n2 <= (n1 + n2) * x1.shape[1]
      and not backends.current().has_accelerator()):
    return _host_gram_kernel(plan, x1, x2, symmetric, names, dtype)
  # Vector inputs: one call; XLA already spreads the matmul and the elementwise loops over the cores, and host
  # threads only add start-up cost.
  threads = host_threads() if plan.is_image else 1
  if plan.is_image:  # one call per thread, in steps of step_rows rows (`_block_fn`)
    per_thread = -(-n1 // threads)
    step_elements = BLOCK_ELEMENTS if _large_steps() else DIAGONAL_STEP_ELEMENTS
    step_rows = max(1, min(per_thread, step_elements // (n2 * math.prod(x1.shape[1:3]))))
    steps = -(-per_thread // step_rows)
  else:
    step_rows, steps = max(1, min(n1, BLOCK_ELEMENTS // n2)), 1
  chunks = _batching.blocks(n1, steps * step_rows)
  if len(chunks) == 1:  # fewer rows than one call holds: no more steps than needed
    steps = -(-n1 // step_rows)
  rows = steps * step_rows
  key = (plan.describe, "block", keras.backend.backend(), steps, step_rows, x2.shape, dtype, names, symmetric)
  fn = _compiled(key, lambda: _block_fn(plan, names, symmetric))
  # Shallow nets border their DIAGONAL tensors by a pad (no scratch), as FULL_PAIRS_LAST does
  # (`PAD_MAX_NONLINEARITIES`).
  bordered_by_scratch = plan.is_image and plan.spatial_nonlinearities > PAD_MAX_NONLINEARITIES
  scratch = _zeros(plan.scratch_size(step_rows * n2, x1.shape[1:3]) if bordered_by_scratch else 0, dtype)
  x2_input = channels_first(x2) if plan.is_image else x2

  def job(chunk):
    start, stop = chunk
    # A view of x1 unless this is a short last block: a fresh copy of a large array costs a page fault per 4 KiB
    # on first touch (FC 64x64 block: 1.5 MiB, more than the kernel's own time).
    rows_of_x1 = [_batching.padded(x1, start, stop, rows)]
    if symmetric:
      index = _batching.padded(np.arange(n1), start, stop, rows)
      rows_of_x1.append(index[:, None] == np.arange(n2)[None, :])
    if plan.is_image:  # (steps, step_rows, ...) for the loop in `_block_fn`, images channel-first
      rows_of_x1 = [a.reshape((steps, step_rows) + a.shape[1:]) for a in rows_of_x1]
      rows_of_x1[0] = channels_first(rows_of_x1[0])
    arrays = [rows_of_x1[0], x2_input, scratch] + rows_of_x1[1:]
    return [r.reshape(rows, n2)[:stop - start] for r in _call(fn, arrays, dtype)]

  parts = _map(job, chunks, threads)
  return [_joined([p[i] for p in parts]) for i in range(len(names) * plan.taps)]  # the whole net


def _full_kernel(plan, x1, x2, symmetric, names, dtype):
  n1, n2 = len(x1), len(x2)
  if symmetric:
    data = x1
    rows, cols = np.triu_indices(n1)
  else:
    data = np.concatenate([x1, x2])
    rows, cols = (a.ravel() for a in np.meshgrid(np.arange(n1), n1 + np.arange(n2), indexing="ij"))
    if plan.vector_needs_variances:  # self pairs (x, x): per-input variances after pooling
      extra = np.arange(n1 + n2)
      rows, cols = np.concatenate([rows, extra]), np.concatenate([cols, extra])
  masked = symmetric or plan.vector_needs_variances
  if SKEWED_GAP and plan.separator is not None and not _full_pairs_last(data.shape[1:3]):
    values = _skewed_values(plan, data, rows, cols, names, dtype, masked)
  else:
    values = _full_values(plan, data, rows, cols, names, dtype, masked)
  out = []
  for tap in _by_tap(values, len(names)):
    out += _assembled(plan, tap, n1, n2, rows, cols, symmetric, names, dtype)
  return out


def _assembled(plan, values, n1, n2, rows, cols, symmetric, names, dtype) -> list:
  """The (n1, n2) blocks of one tap from its per-pair values, through the layers after the pooling (flat outputs,
  taps x names: several when the profile's repeated block lies there)."""
  blocks = []
  for value in values:
    if symmetric:
      block = np.empty((n1, n1), dtype=value.dtype)
      block[rows, cols] = value
      block[cols, rows] = value
    else:
      block = value[:n1 * n2].reshape(n1, n2)
    blocks.append(block)
  if not plan.vector:
    return blocks
  # The layers after the pooling, on the assembled (n1, n2) blocks.
  nngp = blocks[0]
  if symmetric:
    var1 = var2 = np.diagonal(nngp).copy()
  elif plan.vector_needs_variances:
    var1, var2 = values[0][n1 * n2:n1 * n2 + n1], values[0][n1 * n2 + n1:]
  else:  # never read: no nonlinearity follows
    var1, var2 = np.ones(n1, dtype), np.ones(n2, dtype)
  ntk = blocks[1] if "ntk" in names else None
  return _vector_layers(plan, nngp, ntk, var1, var2, symmetric, names, dtype)


def _full_pairs_last(spatial_shape) -> bool:
  """Whether a FULL step of image pairs of this size holds PAIRS_LAST_MIN_PAIRS pairs (then its covariances are
  FULL_PAIRS_LAST, and small images take that layout rather than skewed groups, whose rows are as short)."""
  if _large_steps():
    return False
  return FULL_CHUNK_ELEMENTS // math.prod(spatial_shape)**2 >= PAIRS_LAST_MIN_PAIRS


def _full_values(plan, data, rows, cols, names, dtype, masked):
  """Pairs (data[rows], data[cols]) in FULL chunks of c pairs: one array of len(rows) values per kernel."""
  pairs = len(rows)
  threads = host_threads()
  area = math.prod(data.shape[1:3])
  per_job = -(-pairs // threads)
  chunk_elements = BLOCK_ELEMENTS if _large_steps() else FULL_CHUNK_ELEMENTS
  size = max(1, min(chunk_elements // area**2, per_job))  # pairs per step
  steps = -(-per_job // size)
  pairs_last = size >= PAIRS_LAST_MIN_PAIRS
  # FULL_PAIRS_LAST steps gather their pairs' images from this table inside the program (`_full_fn`) instead of the
  # host copying two images per pair (100 MB a side for a 256 x 256 block of 8x8 images; +1-3%).
  table = np.ascontiguousarray(data.transpose(0, 3, 1, 2)) if pairs_last else None  # (n, C, H, W)
  images_shape = table.shape if pairs_last else data.shape[1:]  # what the program's image input depends on
  key = (plan.describe, "full", keras.backend.backend(), steps, size, images_shape, dtype, names, masked, pairs_last)
  fn = _compiled(key, lambda: _full_fn(plan, names, masked, pairs_last))
  # FULL_PAIRS_LAST tensors are bordered by a pad (no scratch): its loop runs over contiguous vectors of pairs, while
  # XLA copies the scratch into each step's buffers (a third of the time at 8x8, docs/performance.md).
  scratch = _zeros(0 if pairs_last else plan.scratch_size(size, data.shape[1:3]), dtype)

  def job(chunk):
    start, stop = chunk
    a = _batching.padded(rows, start, stop, steps * size)
    b = _batching.padded(cols, start, stop, steps * size)
    grid = (steps, size)
    if pairs_last:  # the images once and each step's indices: the program gathers a step's pairs itself
      images = [table] + [i.reshape(grid).astype(np.int32) for i in (a, b)]
    else:  # each pair's two images, (steps, c, H, W, C)
      images = [data[i].reshape(grid + data.shape[1:]) for i in (a, b)]
    arrays = images + [scratch]
    arrays += [(a == b).reshape(grid)] if masked else []
    return [r.reshape(-1)[:stop - start] for r in _call(fn, arrays, dtype)]

  parts = _map(job, _batching.blocks(pairs, steps * size), threads)
  return [_joined([p[i] for p in parts]) for i in range(len(names) * plan.taps_in(0, plan.split))]


def _skewed_values(plan, data, rows, cols, names, dtype, masked):
  """Pairs (data[rows], data[cols]) as skewed groups (harness/nets/_skew.py), as `_full_values` returns them.

  A unit of work is c whole pairs in one step of all their H groups when a pair's groups fit a step
  (SKEW_STEP_ELEMENTS), else one pair in `split` steps of m groups (padding groups, all rows outside the image,
  add zero where m does not divide H); a short last unit of a thread repeats its last pair, whose value is
  dropped. Memory grows with the pairs, not with the steps: every unit's steps share one set of row maps.
  """
  pairs = len(rows)
  h, w = data.shape[1:3]
  # Accelerators and op-by-op runs take large steps (BLOCK_ELEMENTS, as DIAGONAL steps: `_large_steps`).
  step_elements = BLOCK_ELEMENTS if _large_steps() else SKEW_STEP_ELEMENTS
  fit = max(1, step_elements // (_skew.rows(h, plan.separator) * w * w))
  threads = host_threads()
  if fit >= h:
    c, split, m = min(fit // h, -(-pairs // threads)), 1, h
  else:
    c, split = 1, -(-h // fit)
    m = -(-h // split)
  groups = np.arange(split * m).reshape(split, m)
  groups[groups >= h] = _skew.PADDING_GROUP
  groups = np.tile(groups, (1, c))  # (split, n): step j holds groups[j] of each of the c pairs
  slot = np.arange(c * m) // m  # each group's pair within its unit
  rows_a, rows_b, valid = (a.reshape(split, c * m, -1) for a in _skew.row_maps(h, plan.separator, groups.ravel()))
  offset = (slot * (h + 1))[None, :, None]  # into the (c (H + 1), W) tables of the unit's pairs
  units = -(-pairs // c)
  per_job = -(-units // threads)
  key = (plan.describe, "skewed", keras.backend.backend(), per_job, c, split, m, data.shape[1:], dtype, names,
         masked)
  fn = _compiled(key, lambda: _skewed_fn(plan, names, masked, c))
  scratch = _zeros(plan.skewed_scratch_size(c * m, (h, w)), dtype)
  maps = [rows_a + offset, rows_b + offset, valid.astype(dtype)]

  def job(chunk):
    start, stop = chunk  # in units
    pair = _batching.padded(np.arange(pairs), start * c, min(stop * c, pairs), per_job * c).reshape(per_job, c)
    arrays = [data[rows[pair]], data[cols[pair]]] + maps + [scratch]
    if masked:  # (units, split, n): a self pair's offset-0 group
      arrays.append((rows[pair] == cols[pair])[:, None, slot] & (groups == 0)[None])
    return [o.reshape(-1)[:min(stop * c, pairs) - start * c] for o in _call(fn, arrays, dtype)]

  parts = _map(job, _batching.blocks(units, per_job), threads)
  return [_joined([p[i] for p in parts]) for i in range(len(names) * plan.taps_in(0, plan.split))]
