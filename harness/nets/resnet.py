"""The CIFAR ResNet family with a width multiplier, built from harness.nets' parameterized layers.

`cifar_resnet(width_multiplier, ...)` is ResNet-18 of He, Zhang, Ren & Sun 2016 (arXiv 1512.03385) in its CIFAR
form (a 3x3 stem conv, no max-pool; four stages of `blocks` basic blocks, each two 3x3 convs; channels
`STAGE_CHANNELS` x width_multiplier; stride 2 and a 1x1 projection shortcut where a stage starts; global average
pooling; a Dense readout). Every Conv/Dense is an `NTKConv`/`NTKDense` of harness/nets/_layers.py, so the
parameterizations "ntk", "standard" and "mup" and `mup_lr_multipliers` apply as for a spec's `keras_model`: the stem
is the input layer, the readout the last Dense, every other conv a hidden layer; `model_width` (what muP's
multipliers are relative to) is the first stage's channel count.

Departures from the published ResNet-18, both this suite's choices: no batch normalisation (a net's output then
depends on its input alone, as the online trainer and the per-example predictions compared across widths assume,
and no normalisation statistics need a parameterization of their own), and each residual branch scaled by
1/sqrt(number of blocks) (the depth scaling of Hayou & Yang 2023, arXiv 2302.00453, which keeps the forward
signal O(1) without normalisation). A width multiplier must give whole channel counts at every stage
(`stage_channels`).
"""
from __future__ import annotations

import math
from typing import Sequence

import keras

from harness.nets import _layers
from harness.nets import _parameterization
from harness.nets import backends

STAGE_CHANNELS = (64, 128, 256, 512)   # ResNet-18 at width multiplier 1 (He et al. 2016, Table 1)
BLOCKS = (2, 2, 2, 2)
RELU_W_STD = math.sqrt(2.0)             # He initialisation's gain for ReLU


def stage_channels(width_multiplier: float, base: Sequence[int] = STAGE_CHANNELS) -> tuple[int, ...]:
  """Channels of each stage; ValueError when `width_multiplier` x a base count is not a whole number >= 1."""
  channels = []
  for count in base:
    scaled = count * width_multiplier
    if not (scaled >= 1 and math.isclose(scaled, round(scaled), rel_tol=0, abs_tol=1e-9)):
      raise ValueError(f"width multiplier {width_multiplier:g} does not divide the ResNet's stage channels "
                       f"{tuple(base)}: {count} x {width_multiplier:g} = {scaled:g} channels")
    channels.append(int(round(scaled)))
  return tuple(channels)


class _Builder:
  """Numbers the affine layers (their seeds and roles) as spec.keras_model does."""

  def __init__(self, parameterization: str, seed: int, model_width: int, dtype):
    self.parameterization, self.seed, self.model_width, self.dtype = parameterization, seed, model_width, dtype
    self.index = 0

  def _common(self, role: str, name: str, w_std: float) -> dict:
    common = dict(w_std=w_std, b_std=0.0, parameterization=self.parameterization, role=role,
                  model_width=self.model_width, index=self.index, seed=_layers.layer_seed(self.seed, self.index),
                  name=f"{name}_{self.index}", dtype=self.dtype)
    self.index += 1
    return common

  def conv(self, x, filters: int, filter_size: int = 3, strides: int = 1, role: str = "hidden",
           w_std: float = RELU_W_STD):
    return _layers.NTKConv(filters, filter_size=filter_size, strides=strides, padding="SAME",
                           **self._common(role, "conv", w_std))(x)

  def dense(self, x, units: int):
    return _layers.NTKDense(units, **self._common("readout", "dense", 1.0))(x)


def cifar_resnet(width_multiplier: float, input_shape: Sequence[int] = (32, 32, 3), num_outputs: int = 10,
                 parameterization: str = "mup", seed: int = 0, dtype: str | None = None,
                 blocks: Sequence[int] = BLOCKS, base_channels: Sequence[int] = STAGE_CHANNELS,
                 name: str | None = None) -> keras.Model:
  """The module docstring's ResNet (ResNet-18 with the defaults) at `width_multiplier` x `base_channels`."""
  _parameterization.check_parameterization(parameterization)
  if len(blocks) != len(base_channels) or min(blocks) < 1:
    raise ValueError(f"need one block count >= 1 per stage, got blocks {tuple(blocks)} for {len(base_channels)} "
                     "stages")
  channels = stage_channels(width_multiplier, base_channels)
  if dtype is not None and keras.backend.standardize_dtype(dtype) == "float64":
    backends.current().enable_float64()
  build = _Builder(parameterization, seed, channels[0], dtype)
  branch_scale = 1.0 / math.sqrt(sum(blocks))
  inputs = keras.Input(shape=tuple(input_shape), dtype=dtype, name="inputs")
  x = build.conv(inputs, channels[0], role="input", w_std=1.0)
  x = keras.layers.ReLU(name="relu_stem", dtype=dtype)(x)
  for stage, (count, width) in enumerate(zip(blocks, channels)):
    for block in range(count):
      strides = 2 if stage > 0 and block == 0 else 1
      h = build.conv(x, width, strides=strides)
      h = keras.layers.ReLU(name=f"relu_s{stage}b{block}a", dtype=dtype)(h)
      h = build.conv(h, width)
      h = keras.layers.Rescaling(branch_scale, name=f"branch_scale_s{stage}b{block}", dtype=dtype)(h)
      shortcut = x
      if strides != 1 or int(x.shape[-1]) != width:
        shortcut = build.conv(x, width, filter_size=1, strides=strides, w_std=1.0)
      x = keras.layers.Add(name=f"add_s{stage}b{block}", dtype=dtype)([shortcut, h])
      x = keras.layers.ReLU(name=f"relu_s{stage}b{block}b", dtype=dtype)(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_avg_pool", dtype=dtype)(x)
  outputs = build.dense(x, num_outputs)
  return keras.Model(inputs, outputs, name=name or f"resnet_{parameterization}_x{width_multiplier:g}")


def forward_macs(width_multiplier: float, spatial_size: int = 32, in_channels: int = 3, num_outputs: int = 10,
                 blocks: Sequence[int] = BLOCKS, base_channels: Sequence[int] = STAGE_CHANNELS) -> int:
  """Multiply-accumulates of one forward pass of `cifar_resnet` on one spatial_size^2 image (convs and readout)."""
  channels = stage_channels(width_multiplier, base_channels)
  size, previous = spatial_size, channels[0]
  macs = size * size * 9 * in_channels * channels[0]
  for stage, (count, width) in enumerate(zip(blocks, channels)):
    for block in range(count):
      if stage > 0 and block == 0:
        size = -(-size // 2)
        macs += size * size * previous * width          # 1x1 projection shortcut
      macs += size * size * 9 * (previous + width) * width
      previous = width
  return macs + previous * num_outputs


def parameter_count(width_multiplier: float, in_channels: int = 3, num_outputs: int = 10,
                    blocks: Sequence[int] = BLOCKS, base_channels: Sequence[int] = STAGE_CHANNELS) -> int:
  """Weights (conv kernels and the readout's, without biases) of `cifar_resnet`: what its memory scales with."""
  channels = stage_channels(width_multiplier, base_channels)
  previous = channels[0]
  count = 9 * in_channels * channels[0]
  for stage, (repeat, width) in enumerate(zip(blocks, channels)):
    for block in range(repeat):
      if stage > 0 and block == 0:
        count += previous * width                       # 1x1 projection shortcut
      count += 9 * (previous + width) * width
      previous = width
  return count + previous * num_outputs


__all__ = ["BLOCKS", "STAGE_CHANNELS", "cifar_resnet", "forward_macs", "parameter_count", "stage_channels"]
