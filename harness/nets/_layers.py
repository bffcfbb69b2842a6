"""Keras layers of the finite networks: Dense / Conv with explicit forward multipliers, and Erf.

`NTKDense` and `NTKConv` compute out = a (x W) + b_mult b with W, b initialised and scaled as the
parameterization says (`_parameterization.affine_scaling`). They serialise (`get_config`) and round-trip
through `keras.Model.from_config` and `.keras` files; `reinitialize` draws fresh weights in place, and
`mup_lr_multipliers` gives a muP model's per-variable learning-rate multipliers.
"""
from __future__ import annotations

import numpy as np
import keras
from keras import ops

from harness import seeding
from harness.nets import _kernel_math
from harness.nets import backends
from harness.nets import _parameterization

PACKAGE = "harness_nets"
PADDINGS = ("SAME", "VALID", "CIRCULAR")


def conv_geometry(size: int, filter_size: int, strides: int, padding: str) -> tuple[int, tuple[int, int]]:
  """(output size, (pad before, pad after)) of a convolution along one spatial axis, as TF/Keras/NT pad;
  CIRCULAR pads as SAME (with wrapped values instead of zeros)."""
  if padding == "VALID":
    return (size - filter_size) // strides + 1, (0, 0)
  out = -(-size // strides)
  total = max((out - 1) * strides + filter_size - size, 0)
  return out, (total // 2, total - total // 2)


def layer_seed(model_seed: int, index: int) -> int:
  """Seed of the `index`-th affine layer of a model built with `model_seed` (31-bit, for Keras initializers)."""
  return seeding.seed31(model_seed, index)


class _NormalDrawnInFloat32(keras.initializers.RandomNormal):
  """RandomNormal whose draw is the same in every precision: drawn in float32, then cast to the variable's dtype.

  Keras draws a seed's normals with a different generator per dtype (float32 and float64 draws of one seed are
  uncorrelated), so `--dtype=float64` would change a seed's initial weights, not only the arithmetic: a
  one-seed learning-rate sweep then picks another rate and every statistic moves with it (width_consistency's
  smoke tier did). Drawing in float32 keeps float32 runs as they were and makes a float64 run of a seed start
  from the same weights, rounded."""

  def __call__(self, shape, dtype=None):
    return ops.cast(super().__call__(shape, dtype="float32"), dtype or "float32")


class _Affine(keras.layers.Layer):
  """Shared parts of NTKDense / NTKConv: scaling, initialisation, config."""

  def __init__(self, w_std: float = 1.0, b_std: float = 0.0, parameterization: str = "ntk", role: str = "hidden",
               model_width: int = 1, index: int = 0, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    _parameterization.check_parameterization(parameterization)
    self.w_std, self.b_std = float(w_std), float(b_std)
    self.parameterization, self.role = parameterization, role
    self.model_width, self.index, self.seed = int(model_width), int(index), int(seed)

  def _make_weights(self, kernel_shape: tuple[int, ...], units: int, fan_in: int) -> None:
    self.fan_in = int(fan_in)
    self.scaling = _parameterization.affine_scaling(self.parameterization, self.role, self.fan_in, self.w_std,
                                                    self.b_std)
    self.kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer=self._initializer("kernel"))
    self.bias = self.add_weight(name="bias", shape=(units,), initializer=self._initializer("bias"))

  def _initializer(self, which: str, seed: int | None = None):
    seed = self.seed if seed is None else seed
    if which == "kernel":
      return _NormalDrawnInFloat32(0.0, self.scaling.weight_init_std, seed=seed)
    return _NormalDrawnInFloat32(0.0, self.scaling.bias_init_std, seed=(seed + 1) & 0x7FFFFFFF)

  def reinitialize(self, seed: int) -> None:
    """Fresh weights from this layer's initial distribution, drawn with `seed`."""
    _redraw(self.initial_draws(seed))

  def initial_draws(self, seed: int) -> list[tuple]:
    """(variable, float32 RandomNormal) per weight: what `_initializer(which, seed)` draws for it."""
    return [(variable, self._initializer(which, seed)) for which, variable in (("kernel", self.kernel),
                                                                                ("bias", self.bias))]

  def _affine(self, product):
    return product * self.scaling.weight_multiplier + self.bias * self.scaling.bias_multiplier

  def get_config(self):
    config = super().get_config()
    config.update(w_std=self.w_std, b_std=self.b_std, parameterization=self.parameterization, role=self.role,
                  model_width=self.model_width, index=self.index, seed=self.seed)
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NTKDense(_Affine):
  """Dense layer on the last axis (per pixel on images): out = a x W + b_mult b."""

  def __init__(self, units: int, **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)

  def build(self, input_shape):
    fan_in = int(input_shape[-1])
    self._make_weights((fan_in, self.units), self.units, fan_in)

  def call(self, x):
    return self._affine(ops.matmul(x, self.kernel))

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)

  def get_config(self):
    config = super().get_config()
    config["units"] = self.units
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NTKConv(_Affine):
  """2-D convolution (NHWC): out = a conv(x, W) + b_mult b, fan_in = C * filter area; padding SAME, VALID or
  CIRCULAR (the image wrapped around, SAME's output size)."""

  def __init__(self, filters: int, filter_size: int = 3, strides: int = 1, padding: str = "SAME", **kwargs):
    super().__init__(**kwargs)
    self.filters, self.filter_size, self.strides = int(filters), int(filter_size), int(strides)
    self.padding = padding.upper()

  @property
  def units(self) -> int:
    return self.filters

  def build(self, input_shape):
    channels = int(input_shape[-1])
    shape = (self.filter_size, self.filter_size, channels, self.filters)
    self._make_weights(shape, self.filters, channels * self.filter_size**2)

  def call(self, x):
    if self.padding == "CIRCULAR":
      return self._affine(ops.conv(self._wrap(x), self.kernel, strides=self.strides, padding="valid"))
    return self._affine(ops.conv(x, self.kernel, strides=self.strides, padding=self.padding.lower()))

  def _geometry(self, size: int) -> tuple[int, tuple[int, int]]:
    return conv_geometry(size, self.filter_size, self.strides, self.padding)

  def _wrap(self, x):
    """x extended around H and W by wrapping, with the pads of 'SAME' (so the output size is SAME's)."""
    for axis in (1, 2):
      n = int(x.shape[axis])
      x = _kernel_math.wrap_axis(x, axis, n, *self._geometry(n)[1])
    return x

  def compute_output_shape(self, input_shape):
    _, h, w, _ = input_shape
    size = lambda n: None if n is None else self._geometry(n)[0]  # noqa: E731
    return (input_shape[0], size(h), size(w), self.filters)

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters, filter_size=self.filter_size, strides=self.strides, padding=self.padding)
    return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class Erf(keras.layers.Layer):
  """Elementwise erf activation."""

  def call(self, x):
    return ops.erf(x)

  def compute_output_shape(self, input_shape):
    return input_shape


def affine_layers(model: keras.Model) -> list[_Affine]:
  """The NTKDense / NTKConv layers of `model`, in the order they were created."""
  found = []
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if isinstance(layer, _Affine):
      found.append(layer)
  return sorted(found, key=lambda layer: layer.index)


def mup_lr_multipliers(model: keras.Model, base_width: int, optimizer: str = "sgd") -> dict[str, float]:
  """{variable.path: learning-rate multiplier} for a `keras_model(..., parameterization="mup")` (the table in
  harness/nets/_parameterization.py's docstring).

  Multiply the base learning rate (tuned at `base_width`) by these per variable, e.g. by scaling each
  gradient for SGD, or with one optimizer per group for Adam.
  """
  if base_width <= 0:
    raise ValueError(f"base_width must be positive, got {base_width}")
  multipliers = {}
  for layer in affine_layers(model):
    if layer.parameterization != "mup":
      raise ValueError(f"{layer.name} uses parameterization {layer.parameterization!r}, not 'mup'")
    ratio = layer.model_width / base_width
    weight_exp, bias_exp = _parameterization.lr_exponents(optimizer, layer.role)
    multipliers[layer.kernel.path] = ratio**weight_exp
    multipliers[layer.bias.path] = ratio**bias_exp
  return multipliers


def reinitialize(model: keras.Model, seed: int) -> keras.Model:
  """Draw every affine layer's weights afresh, exactly as `spec.keras_model(..., seed=seed)` would."""
  _redraw([draw for layer in affine_layers(model) for draw in layer.initial_draws(layer_seed(seed, layer.index))])
  return model


def _redraw(draws) -> None:
  """Assign each variable its initializer's values (`_NormalDrawnInFloat32`: a float32 draw, cast), all drawn in one
  backend call (`backends.seeded_normals`, the values of keras.random.normal)."""
  values = backends.current().seeded_normals(
      [(variable.shape, init.mean, init.stddev, init.seed) for variable, init in draws], "float32")
  for (variable, _), value in zip(draws, values):
    variable.assign(ops.cast(value, variable.dtype))
