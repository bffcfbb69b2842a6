"""What a `finite_vs_infinite` tier's run needs (harness/preflight.py): its phases, the CIFAR-10 examples they read,
its peak memory: in host memory the precision phase's FCN NNGP and NTK train and test kernels in float64 and float32
at the largest size and one float64 copy for the eigenvalues; on the device an architecture phase's empirical NTK at
the widest width, bounded by per-example Jacobians of every parameter on the probe set (float32; the flat Dense
layers' structured blocks need less). On a machine without an accelerator both count, an upper bound (they are
held in different phases)."""
from __future__ import annotations

from typing import Sequence

from harness import preflight
from harness.preflight import DataNeed, array_bytes

from benchmarks.finite_vs_infinite.architectures import FILTER_SIZE
from benchmarks.finite_vs_infinite.config import FiniteVsInfiniteConfig

NUM_OUTPUTS = 10
CHANNELS = 3


def parameter_count(config: FiniteVsInfiniteConfig, arch: str) -> int:
  """Weights of the widest net of `arch` (biases and the readout's are negligible beside them)."""
  width = max(config.widths(arch))
  pixels = (32 // config.downsample) ** 2
  if arch == "fcn":
    return pixels * CHANNELS * width + (config.depth - 1) * width ** 2 + width * NUM_OUTPUTS
  taps = FILTER_SIZE ** 2
  readout = width * NUM_OUTPUTS * (pixels if arch == "cnn_flatten" else 1)
  return taps * CHANNELS * width + config.depth * taps * width ** 2 + readout


def needs(config: FiniteVsInfiniteConfig, seeds: Sequence[int]) -> preflight.Needs:
  del seeds
  phases = ("data",) + tuple(config.architectures) + ("precision",)
  largest = max(config.precision_sizes)
  data = [DataNeed("cifar10", "train", config.n_train, "data"), DataNeed("cifar10", "test", config.n_test, "data"),
          DataNeed("cifar10", "train", largest, "precision"),
          DataNeed("cifar10", "test", config.precision_n_test, "precision")]
  kernels = 2 * (array_bytes(largest, largest + config.precision_n_test, dtype="float64")
                 + array_bytes(largest, largest + config.precision_n_test, dtype="float32"))
  precision = kernels + array_bytes(largest, largest)
  jacobians = max(array_bytes(config.ntk_points, NUM_OUTPUTS, parameter_count(config, arch), dtype=config.finite_dtype)
                  for arch in config.architectures)
  return preflight.Needs(phases=phases, datasets=tuple(data),
                         memory=(("precision kernels (float64 + float32)", precision),),
                         device_memory=(("empirical NTK Jacobians (widest net, upper bound)", jacobians),))
