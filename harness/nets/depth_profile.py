"""`DepthProfile`: the nets serial(*head, repeat(block, d), *readout) for many depths d, and their kernels at every
depth from one pass.

    profile = nets.DepthProfile(block=nets.serial(nets.Conv(3, w_std=1.2, b_std=0.2), nets.Erf()),
                                readout=(nets.GlobalAvgPool(), nets.Dense(w_std=1.2, b_std=0.2)))
    k = profile.kernel(x, depths=(1, 2, 5, 10, 20, 50), get=("nngp", "ntk"))   # {depth: {name: (n, n) array}}
    model = profile.spec(10).keras_model(width=128, input_shape=x.shape[1:])

The NNGP/NTK recursion of a depth-D net passes through every shallower net's kernel before its readout: the kernel
call runs the block D_max times, as a loop in one compiled program (its compile time does not depend on depth),
and applies the readout at each requested depth on the way. neural-tangents evaluates each depth as its own
network, which costs sum(depths) blocks instead of max(depths) and one compilation per depth.
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Sequence

import numpy as np

from harness.nets import _evaluate
from harness.nets import _spec
from harness.nets._batching import KERNELS


@dataclasses.dataclass(frozen=True)
class DepthProfile:
  """serial(*head, repeat(block, depth), *readout) for any depth >= 0 (a block must keep the shape it takes)."""
  block: _spec.Layer
  head: tuple = ()
  readout: tuple = ()

  def __post_init__(self):
    object.__setattr__(self, "head", tuple(self.head))
    object.__setattr__(self, "readout", tuple(self.readout))

  def spec(self, depth: int) -> _spec.Layer:
    """The net of one depth (its finite Keras model: `.keras_model`; its kernel alone: `.kernel`)."""
    if depth < 0:
      raise ValueError(f"depth must be >= 0, got {depth}")
    blocks = (_spec.repeat(self.block, depth),) if depth else ()
    return _spec.serial(*self.head, *blocks, *self.readout)

  def kernel(self, x1, x2=None, depths: Sequence[int] = (1,), get: str | Sequence[str] = KERNELS,
             dtype: str = "float64") -> dict:
    """{depth: self.spec(depth).kernel(x1, x2, get, dtype)} for every depth, equal to those calls to rounding, from
    one pass of the recursion to the deepest."""
    depths = tuple(sorted({operator.index(d) for d in depths}))
    if not depths or depths[0] < 0:
      raise ValueError(f"depths must be integers >= 0, got {depths}")
    block_leaves = len(self.block.leaves())
    if not block_leaves:
      raise ValueError("the repeated block has no layers")
    shape = tuple(np.shape(x1)[1:])
    once = _spec.serial(*self.head, self.block).check_shapes(shape)  # may change the channels (3 -> width)
    twice = _spec.serial(*self.head, self.block, self.block).check_shapes(shape)
    if tuple(once) != tuple(twice):
      raise ValueError(f"the repeated block must keep the shape it returns: {self.block!r} maps {once} to {twice}")
    if len(self.spec(depths[0]).check_shapes(shape)) != 1:  # depth 0 skips the block: its readout alone
      raise ValueError(f"the net of depth {depths[0]} does not end in a vector: add Flatten() or GlobalAvgPool()")
    start = len(_spec.serial(*self.head).leaves()) if self.head else 0
    template = _spec.serial(*self.head, self.block, *self.readout)
    return _evaluate.kernel_by_depth(template, (start, start + block_leaves, depths), x1, x2, get=get, dtype=dtype)
