"""Layer records: each is one architecture element with its infinite-width kernel map and its Keras builder.

A spec is a tree of frozen dataclasses (`Serial`, `Residual` and the leaf layers). Three walks over it:

  output_shape(shape, path)  shape check; raises ValueError naming the layer (its path in the tree)
  kernel_fn(kernel)          the NNGP/NTK map (harness/nets/__init__.py documents every formula)
  build(x, context)          the finite Keras layers (functional API)

Shapes are tuples without the batch axis: (d,) for vectors, (H, W, C) for images; a channel count of None
stands for the hidden width, which only `keras_model` fixes.

The evaluator (harness/nets/_evaluate.py) plans a kernel call from the answers of the spec's top-level leaves
(`leaves()`) and imports no layer class, so a new layer is taught here, in its own class (as neural-tangents'
`@requires(...)` lets a layer declare what it needs):

  readout_layout             an images -> vectors readout: the layout its kernel_fn needs (DIAGONAL: the
                             same-position covariances; FULL: every pixel pair); None for every other layer
  border(spatial_shape)      zero border it reads around its input covariance (made with it when it comes first)
  max_border()               an upper bound on the zero border its kernel map gives a spatial tensor (scratch size)
  skew_separator(shape)      whether it keeps every entry's vertical offset p'_h - p_h (the skewed layout of
                             harness/nets/_skew.py): the separator rows it needs then (0: none), else None
  has_nonlinearity()         whether the per-input variances after the readout are read (a ReLU/Erf follows)
  reads_interior(layout)     whether it reads only the interior of its input covariance (a readout's sum), so the
                             nonlinearity before it may leave its outputs unbordered (`Kernel.output_border`)
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import keras
from keras import ops

from harness.nets import _evaluate
from harness.nets import _kernel_math
from harness.nets import _layers
from harness.nets import _parameterization
from harness.nets import backends
from harness.nets._kernel import DIAGONAL, FULL, FULL_PAIRS_LAST, NONLINEARITY_BORDER, SKEWED, VECTOR, Kernel

PAIRS = "pairs"  # per-pair scalars after GlobalAvgPool: nngp, ntk (c,) from FULL, or (n,) group shares from SKEWED
PADDINGS = _layers.PADDINGS


class Layer:
  """Base of every spec element. Public methods: `kernel`, `keras_model`, `describe`."""

  def kernel(self, x1, x2=None, get: str | Sequence[str] = ("nngp", "ntk"), dtype: str = "float64"):
    """Infinite-width NNGP and/or NTK between the rows of x1 and x2 (x1 with itself when x2 is None).

    Returns {name: np.ndarray (len(x1), len(x2))}, or the bare array when `get` is a single name.
    Compiled once per (spec, shapes, dtype, get) and cached; see harness/nets/_evaluate.py.
    """
    return _evaluate.kernel(self, x1, x2, get=get, dtype=dtype)

  def keras_model(self, width: int, input_shape: Sequence[int], num_outputs: int = 1,
                  parameterization: str = "ntk", seed: int = 0, dtype: str | None = None,
                  name: str | None = None) -> keras.Model:
    """The finite network: every hidden Dense/Conv has `width` units/channels, the last Dense `num_outputs`.

    dtype: of the inputs, weights and computation of every layer (default: Keras' floatx, float32)."""
    return _build_model(self, width, tuple(int(s) for s in input_shape), num_outputs, parameterization, seed,
                        dtype, name)

  def describe(self) -> str:
    """Stable text of the architecture (also the compile- and tile-cache key)."""
    return repr(self)

  # --- internal protocol ------------------------------------------------------------------------------
  def leaves(self) -> list["Layer"]:
    """The top-level sequence with serial nesting flattened (Residual stays one element)."""
    return [self]

  # What the evaluator asks (module docstring); the defaults are a layer that maps each position on its own.
  readout_layout: ClassVar[str | None] = None

  def border(self, spatial_shape) -> int:
    """Zero border this layer reads around an input covariance of `spatial_shape`."""
    return 0

  def max_border(self) -> int:
    """Upper bound on the zero border this layer's kernel map gives a spatial tensor."""
    return 0

  def skew_separator(self, spatial_shape) -> int | None:
    """Separator rows this layer needs in the skewed layout, or None if it does not keep the vertical offset."""
    return 0

  def check_shapes(self, input_shape: tuple) -> tuple:
    """Output shape on `input_shape` (per example), or ValueError naming the first layer that does not fit."""
    if len(input_shape) not in (1, 3):
      raise ValueError(f"inputs must be vectors (d,) or NHWC images (H, W, C), got per-example shape {input_shape}")
    return self.output_shape(tuple(input_shape), "spec")

  def output_shape(self, shape: tuple, path: str) -> tuple:
    return shape

  def kernel_fn(self, k: Kernel) -> Kernel:
    raise NotImplementedError

  def build(self, x, context: "_BuildContext"):
    raise NotImplementedError

  def has_nonlinearity(self) -> bool:
    return False

  def reads_interior(self, layout: str) -> bool:
    """Whether this layer reads only the interior of an input covariance in `layout` (then the nonlinearity
    before it need not border its outputs)."""
    return False

  def _error(self, path: str, message: str) -> ValueError:
    return ValueError(f"{path} {self!r}: {message}")


def _is_image(shape: tuple) -> bool:
  return len(shape) == 3


def _describe_shape(shape: tuple) -> str:
  return "(" + ", ".join("width" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def _affine(k: Kernel, w_std: float, b_std: float) -> Kernel:
  """NNGP' = w^2 K + b^2; NTK' = NNGP' + w^2 NTK (NT stax.Dense, NTK parameterization)."""
  w2, b2 = w_std**2, b_std**2
  mask = k.row_mask()  # SKEWED: separator rows stay zero (harness/nets/_skew.py)
  nngp = k.nngp * w2 + b2 if mask is None else (k.nngp * w2 + b2) * mask
  ntk, rest = None, None
  if k.track_ntk:
    if k.ntk is None:
      ntk = nngp
    else:
      rest = k.ntk * w2 if mask is None else k.ntk * (mask * w2)
      ntk = nngp + rest
  return k.replace(nngp=nngp, ntk=ntk, var1=k.var1 * w2 + b2, var2=k.var2 * w2 + b2,
                   affine_parts=None if rest is None else (nngp, rest))


# ------------------------------------------------------------------------------------------------------
# Affine layers
# ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Dense(Layer):
  """Fully connected layer, out = w_std/sqrt(fan_in) x W + b_std b; on images it acts per pixel (like NT)."""
  w_std: float = 1.0
  b_std: float = 0.0

  def output_shape(self, shape, path):
    return shape[:-1] + (None,)

  def kernel_fn(self, k):
    return _affine(k.interior(), self.w_std, self.b_std)

  def build(self, x, context):
    return context.affine(self, x)


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
  """2-D convolution with a square filter, fan_in = C * filter_size^2 (NHWC).

  padding: 'SAME' (zeros, TF convention), 'VALID', or 'CIRCULAR' (the image wraps around like a torus, with the
  output size and pads of 'SAME'; NT stax.Conv's padding='CIRCULAR'): every pixel then has the same neighbourhood,
  which the mean-field theory of CNNs assumes (Xiao et al. 2018, arXiv 1806.05393)."""
  filter_size: int = 3
  w_std: float = 1.0
  b_std: float = 0.0
  strides: int = 1
  padding: str = "SAME"

  def __post_init__(self):
    if self.padding.upper() not in PADDINGS:
      raise ValueError(f"{self!r}: padding must be one of {PADDINGS}")
    object.__setattr__(self, "padding", self.padding.upper())
    if self.filter_size < 1 or self.strides < 1:
      raise ValueError(f"{self!r}: filter_size and strides must be >= 1")

  def geometry(self, size: int) -> tuple[int, tuple[int, int]]:
    """(output size, (pad before, pad after)) along one spatial axis, as TF/Keras/NT pad."""
    return _layers.conv_geometry(size, self.filter_size, self.strides, self.padding)

  @property
  def circular(self) -> bool:
    return self.padding == "CIRCULAR"

  def border(self, spatial_shape) -> int:
    """Zero border this layer reads around an input of `spatial_shape` (its largest pad; 0 when circular)."""
    if self.circular:
      return 0
    return self.pad_width(spatial_shape)

  def pad_width(self, spatial_shape) -> int:
    """The largest pad along any spatial axis."""
    return max(max(self.geometry(n)[1]) for n in spatial_shape)

  def max_border(self) -> int:
    return self.filter_size - 1  # the largest pad of any geometry

  def skew_separator(self, spatial_shape) -> int | None:
    """Stride 1 with zero 'SAME' padding keeps p'_h - p_h (and the image size); the widest pad is then the
    separator (harness/nets/_skew.py). Strided, 'VALID' and circular Convs do not keep it."""
    if self.padding == "SAME" and self.strides == 1:
      return self.pad_width(spatial_shape)
    return None

  def output_shape(self, shape, path):
    if not _is_image(shape):
      raise self._error(path, f"expects an image input (H, W, C), got a vector of shape {_describe_shape(shape)} "
                              "(a Flatten or GlobalAvgPool comes before it?)")
    h, w, _ = shape
    (oh, _), (ow, _) = self.geometry(h), self.geometry(w)
    if oh < 1 or ow < 1:
      raise self._error(path, f"filter {self.filter_size} does not fit a {h}x{w} image with padding "
                              f"{self.padding!r}")
    return (oh, ow, None)

  def kernel_fn(self, k):
    (oh, pads_h), (ow, pads_w) = self.geometry(k.spatial_shape[0]), self.geometry(k.spatial_shape[1])
    pads, out = (pads_h, pads_w), (oh, ow)
    filt, strides = (self.filter_size,) * 2, (self.strides,) * 2
    if self.circular:  # wrap the interior around by the widest pad (p and p' shift together, so each axis wraps)
      border = self.pad_width(k.spatial_shape)
      k = k.interior()
      pairs_bordered = False
    else:  # the pair tensors get their zero border from `with_border` (a recycled buffer), the variances here
      border = self.border(k.spatial_shape)
      k = k.with_border(border) if border else k.interior()
      pairs_bordered = True

    def stencil(t, axes, bordered: bool, extent):
      if border and not bordered:
        t = (_kernel_math.wrap_spatial(t, border, axes, k.spatial_shape) if self.circular
             else _kernel_math.pad_spatial(t, border, axes))
      return _kernel_math.conv_stencil(t, border, axes, filt, strides, pads, extent)

    pair_axes, var_axes, extent = k.pair_spatial_axes(), k.var_spatial_axes(), k.pair_extent(out)
    nngp = stencil(k.nngp, pair_axes, pairs_bordered, extent)
    ntk = None if k.ntk is None else stencil(k.ntk, pair_axes, pairs_bordered, extent)
    linear = k.replace(nngp=nngp, ntk=ntk, var1=stencil(k.var1, var_axes, False, out),
                       var2=stencil(k.var2, var_axes, False, out),
                       border=0, spatial_shape=out)
    return _affine(linear, self.w_std, self.b_std)

  def build(self, x, context):
    return context.affine(self, x)


# ------------------------------------------------------------------------------------------------------
# Nonlinearities
# ------------------------------------------------------------------------------------------------------
def _inverse_sqrt_or_zero(v):
  """(sqrt(v), 1/sqrt(v) or 0 where v = 0), both ending in an op XLA deems expensive (sqrt, divide): then it
  keeps these small per-input tensors in memory instead of recomputing the variance recursion inside the
  loop over every pair entry they are broadcast to."""
  root = ops.sqrt(v)
  return root, 1.0 / ops.where(v > 0, root, ops.full_like(root, float("inf")))


@dataclasses.dataclass(frozen=True)
class Relu(Layer):
  """max(x, 0): arc-cosine kernel (Cho & Saul 2009)."""

  def kernel_fn(self, k):
    k = k.interior()
    root1, inv1 = _inverse_sqrt_or_zero(k.var1)
    root2, inv2 = _inverse_sqrt_or_zero(k.var2)
    n1, n2 = k.broadcast_vars(root1, root2)
    i1, i2 = k.broadcast_vars(inv1, inv2)
    hold = k.angle_hold()
    nngp, ntk = _kernel_math.relu(k.nngp, k.ntk if k.track_ntk else None, n1, n2, i1, i2,
                                  k.same_position_mask(), hold=hold, ntk_rest=k.ntk_rest())
    if k.track_ntk and k.ntk is None:
      ntk = None  # 0 * Kdot stays 0
    return k.nonlinearity_output(nngp, ntk, _kernel_math.relu_variance(k.var1), _kernel_math.relu_variance(k.var2),
                                 shared=hold is None)

  def build(self, x, context):
    return keras.layers.ReLU(**context.options("relu"))(x)

  def has_nonlinearity(self):
    return True


@dataclasses.dataclass(frozen=True)
class Erf(Layer):
  """erf(x): arcsine kernel (Williams 1997)."""

  def kernel_fn(self, k):
    k = k.interior()
    v1, v2 = k.broadcast_vars(k.var1, k.var2)
    nngp, ntk = _kernel_math.erf(k.nngp, k.ntk if k.track_ntk else None, v1, v2, k.same_position_mask())
    if k.track_ntk and k.ntk is None:
      ntk = None
    return k.nonlinearity_output(nngp, ntk, _kernel_math.erf_variance(k.var1), _kernel_math.erf_variance(k.var2))

  def build(self, x, context):
    return _layers.Erf(**context.options("erf"))(x)

  def has_nonlinearity(self):
    return True


@dataclasses.dataclass(frozen=True)
class Identity(Layer):
  """f(x) = x."""

  def kernel_fn(self, k):
    return k

  def build(self, x, context):
    return x


# ------------------------------------------------------------------------------------------------------
# Readouts
# ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
  """Images to vectors; kernel: mean over pixels of the same-position covariances (a no-op on vectors)."""
  readout_layout = DIAGONAL

  def output_shape(self, shape, path):
    if not _is_image(shape):
      return shape
    h, w, c = shape
    return (None if c is None else h * w * c,)

  def reads_interior(self, layout):
    return layout == DIAGONAL

  def kernel_fn(self, k):
    if k.layout == VECTOR:
      return k
    h, w = k.spatial_shape
    scale = 1.0 / (h * w)
    if k.layout == DIAGONAL:
      # Sum a buffer in memory (see GlobalAvgPool): the bordered one, zero border included, or the unbordered
      # outputs a nonlinearity holds (`reads_interior`; the barrier holds any other expression).
      if k.border == 0:
        held = backends.current().barrier(*(t for t in (k.nngp, k.ntk) if t is not None))
        k = k.replace(nngp=held[0], ntk=held[1] if len(held) > 1 else None)
      def mean(t):
        return None if t is None else _kernel_math.sum_axes(t, (0, 1)) * scale
      var1, var2 = ops.sum(k.var1, axis=(0, 1)) * scale, ops.sum(k.var2, axis=(0, 1)) * scale
      return Kernel(nngp=mean(k.nngp), ntk=mean(k.ntk), var1=var1, var2=var2, layout=VECTOR,
                    track_ntk=k.track_ntk, same=k.same)
    k = k.interior()

    def mean_diagonal(t):
      if t is None:
        return None
      if k.layout == FULL_PAIRS_LAST:
        return ops.sum(ops.diagonal(ops.reshape(t, (h * w, h * w, -1)), axis1=0, axis2=1), axis=-1) * scale
      return ops.sum(ops.diagonal(ops.reshape(t, (-1, h * w, h * w)), axis1=1, axis2=2), axis=1) * scale
    return Kernel(nngp=mean_diagonal(k.nngp), ntk=mean_diagonal(k.ntk), var1=None, var2=None, layout=PAIRS,
                  track_ntk=k.track_ntk, same=k.same)

  def build(self, x, context):
    return keras.layers.Flatten(**context.options("flatten"))(x)


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(Layer):
  """Mean over pixels; kernel: mean over all pixel pairs of the full spatial covariance."""
  readout_layout = FULL  # or SKEWED, which holds the same pairs (the evaluator's choice)

  def output_shape(self, shape, path):
    if not _is_image(shape):
      raise self._error(path, f"expects an image input (H, W, C), got a vector of shape {_describe_shape(shape)}")
    return (shape[-1],)

  def reads_interior(self, layout):
    return layout == FULL_PAIRS_LAST

  def kernel_fn(self, k):
    if k.layout not in (FULL, FULL_PAIRS_LAST, SKEWED):
      raise ValueError(f"{self!r} needs the full spatial covariance (layout {FULL!r}), got {k.layout!r}")
    # Sum a bordered buffer in memory (its zero border adds nothing): reducing the last layer's fused
    # expression directly makes XLA split it into several passes. FULL_PAIRS_LAST without a border (a
    # nonlinearity's outputs, held: `reads_interior`): a matrix-vector product, whose operand XLA holds anyway.
    if not (k.layout == FULL_PAIRS_LAST and k.border == 0):
      k = k.with_border(max(k.border, 1))
    h, w = k.spatial_shape
    scale = 1.0 / (h * w) ** 2
    summed = range(1, 5 if k.layout == FULL else 4)

    def mean(t):
      if t is None:
        return None
      if k.layout == FULL_PAIRS_LAST:  # (positions, pairs): a matrix-vector product, which beat the sums of slices
        flat = ops.reshape(t, (-1, int(t.shape[-1])))  # by 7% at 8x8 depth 2, and ops.sum by 2x (docs/performance.md)
        return ops.reshape(ops.matmul(ops.ones((1, int(flat.shape[0])), dtype=t.dtype), flat), (-1,)) * scale
      return _kernel_math.sum_axes(t, summed) * scale
    return Kernel(nngp=mean(k.nngp), ntk=mean(k.ntk), var1=None, var2=None, layout=PAIRS, track_ntk=k.track_ntk,
                  same=k.same)

  def build(self, x, context):
    return keras.layers.GlobalAveragePooling2D(**context.options("global_avg_pool"))(x)


# ------------------------------------------------------------------------------------------------------
# Combinators
# ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Serial(Layer):
  """Layers applied one after another."""
  layers: tuple[Layer, ...]

  def __repr__(self):
    return "serial(" + ", ".join(repr(layer) for layer in self.layers) + ")"

  def leaves(self):
    return [leaf for layer in self.layers for leaf in layer.leaves()]

  def output_shape(self, shape, path):
    for i, layer in enumerate(self.layers):
      shape = layer.output_shape(shape, f"{path}[{i}]")
    return shape

  def kernel_fn(self, k):
    for layer in self.layers:
      k = layer.kernel_fn(k)
    return k

  def build(self, x, context):
    for layer in self.layers:
      x = layer.build(x, context)
    return x

  def has_nonlinearity(self):
    return any(layer.has_nonlinearity() for layer in self.layers)

  def max_border(self):
    return max([0] + [layer.max_border() for layer in self.layers])

  def skew_separator(self, spatial_shape):
    return _widest_separator(self.layers, spatial_shape)


def _widest_separator(layers, spatial_shape) -> int | None:
  """The widest separator `layers` need in the skewed layout, None if one of them does not keep the offset (the
  image size is then kept too, so every layer sees `spatial_shape`)."""
  separators = [layer.skew_separator(spatial_shape) for layer in layers]
  return None if None in separators else max([0] + separators)


def _last_affine(layer: Layer) -> Layer | None:
  leaves = layer.leaves()
  return leaves[-1] if leaves and isinstance(leaves[-1], (Dense, Conv)) else None


@dataclasses.dataclass(frozen=True)
class Residual(Layer):
  """x + branch_scale * branch(x); kernel K_x + s^2 K_branch (independent paths in the limit, NT FanInSum)."""
  branch: Layer
  branch_scale: float = 1.0

  def __repr__(self):
    return f"residual({self.branch!r}, branch_scale={self.branch_scale!r})"

  def output_shape(self, shape, path):
    branch_path = f"{path}.branch"
    out = self.branch.output_shape(shape, branch_path)
    if _is_image(out) != _is_image(shape) or out[:-1] != shape[:-1]:
      raise self._error(path, f"the branch maps {_describe_shape(shape)} to {_describe_shape(out)}; a residual "
                              "branch must keep the shape")
    if _last_affine(self.branch) is None:
      raise self._error(path, "the branch must end in a Dense or Conv layer: only then is it independent of the "
                              "skip path in the infinite-width limit, so that K = K_x + s^2 K_branch")
    if shape[-1] is not None:
      raise self._error(path, f"the skip path carries the {shape[-1]} input channels but the branch outputs "
                              "`width`; put a Dense/Conv before the residual")
    return out

  def kernel_fn(self, k):
    kb = self.branch.kernel_fn(k.replace(output_border=NONLINEARITY_BORDER)).interior()  # the branch's own borders
    k = k.interior()
    s2 = self.branch_scale**2
    ntk = None
    if k.track_ntk:
      if kb.ntk is None:
        ntk = k.ntk
      else:
        ntk = kb.ntk * s2 if k.ntk is None else k.ntk + kb.ntk * s2
    return kb.replace(nngp=k.nngp + kb.nngp * s2, ntk=ntk, var1=k.var1 + kb.var1 * s2,
                      var2=k.var2 + kb.var2 * s2)

  def build(self, x, context):
    y = self.branch.build(x, context)
    y = keras.layers.Rescaling(self.branch_scale, **context.options("branch_scale"))(y)
    return keras.layers.Add(**context.options("residual"))([x, y])

  def has_nonlinearity(self):
    return self.branch.has_nonlinearity()

  def max_border(self):
    return self.branch.max_border()

  def skew_separator(self, spatial_shape):
    return self.branch.skew_separator(spatial_shape)  # the skip path keeps every offset


def serial(*layers: Layer) -> Serial:
  """The layers applied in order."""
  for layer in layers:
    if not isinstance(layer, Layer):
      raise TypeError(f"serial() takes harness.nets layers, got {layer!r}")
  return Serial(tuple(layers))


def residual(branch: Layer, branch_scale: float = 1.0) -> Residual:
  """x + branch_scale * branch(x)."""
  if not isinstance(branch, Layer):
    raise TypeError(f"residual() takes a harness.nets layer as branch, got {branch!r}")
  return Residual(branch, float(branch_scale))


def repeat(layer: Layer, n: int) -> Serial:
  """serial(layer, layer, ..., layer), n copies (independent weights in the finite network)."""
  if n < 1:
    raise ValueError(f"repeat needs n >= 1, got {n}")
  return Serial((layer,) * n)


# ------------------------------------------------------------------------------------------------------
# Keras models
# ------------------------------------------------------------------------------------------------------
class _BuildContext:
  """Numbers the affine layers, knows the readout, width, parameterization and seeds."""

  def __init__(self, width: int, num_outputs: int, parameterization: str, seed: int, readout_index: int,
               dtype: str | None = None):
    self.width, self.num_outputs, self.dtype = width, num_outputs, dtype
    self.parameterization, self.seed = parameterization, seed
    self.readout_index = readout_index
    self.affine_count = 0
    self.counts: dict[str, int] = {}

  def name(self, kind: str) -> str:
    n = self.counts.get(kind, 0)
    self.counts[kind] = n + 1
    return f"{kind}_{n}"

  def options(self, kind: str) -> dict[str, Any]:
    """Constructor arguments of the next Keras layer of `kind`: its unique name and the model's dtype (every
    layer gets it: an Input's dtype alone does not stop the layers computing in the default floatx)."""
    return {"name": self.name(kind), "dtype": self.dtype}

  def affine(self, layer: Layer, x):
    index = self.affine_count
    self.affine_count += 1
    readout = index == self.readout_index
    role = "readout" if readout else ("input" if index == 0 else "hidden")
    units = self.num_outputs if readout else self.width
    common = dict(w_std=layer.w_std, b_std=layer.b_std, parameterization=self.parameterization, role=role,
                  model_width=self.width, index=index, seed=_layers.layer_seed(self.seed, index))
    if isinstance(layer, Conv):
      keras_layer = _layers.NTKConv(units, filter_size=layer.filter_size, strides=layer.strides,
                                    padding=layer.padding, **self.options("conv"), **common)
    else:
      keras_layer = _layers.NTKDense(units, **self.options("dense"), **common)
    return keras_layer(x)


def _affine_sequence(layer: Layer) -> list[Layer]:
  """Dense/Conv leaves in build order, residual branches included."""
  if isinstance(layer, Serial):
    return [a for sub in layer.layers for a in _affine_sequence(sub)]
  if isinstance(layer, Residual):
    return _affine_sequence(layer.branch)
  return [layer] if isinstance(layer, (Dense, Conv)) else []


def _build_model(spec: Layer, width: int, input_shape: tuple, num_outputs: int, parameterization: str, seed: int,
                 dtype, name) -> keras.Model:
  _parameterization.check_parameterization(parameterization)
  if width < 1 or num_outputs < 1:
    raise ValueError(f"width and num_outputs must be >= 1, got {width}, {num_outputs}")
  out = spec.check_shapes(input_shape)
  if _is_image(out):
    raise ValueError(f"{spec!r} ends with an image {_describe_shape(out)}; add Flatten() or GlobalAvgPool() and "
                     "a Dense readout")
  affine = _affine_sequence(spec)
  if not affine or not isinstance(affine[-1], Dense) or not isinstance(spec.leaves()[-1], Dense):
    raise ValueError(f"{spec!r} must end with a Dense readout layer")
  if dtype is not None and keras.backend.standardize_dtype(dtype) == "float64":
    backends.current().enable_float64()  # JAX: jax_enable_x64, else float64 weights silently become float32
  context = _BuildContext(width, num_outputs, parameterization, seed, readout_index=len(affine) - 1, dtype=dtype)
  inputs = keras.Input(shape=input_shape, dtype=dtype, name="inputs")
  outputs = spec.build(inputs, context)
  return keras.Model(inputs, outputs, name=name or f"{parameterization}_width{width}")
