"""Config and tiers of `commutativity` (the grid of widths, depths, seeds and inputs each tier runs)."""
from __future__ import annotations

import dataclasses

from harness import preflight, registry
from harness.residual_gram import ACTIVATIONS

INPUT_SETS = ("synthetic", "cifar10")
INPUT_CORRELATIONS = (0.0, 0.25, 0.5, 0.75, 0.9)
CIFAR_POOL = 4000          # official train images 0..3999 (the exact-pixel mirror holds these)
CIFAR_SEED = 0
MAX_SYNTHETIC_POINTS = 16        # synthetic inputs: len(input_correlations) + 1 points in as many dimensions
MAX_KERNEL_DEPTH = 1024          # deepest infinite-width kernel of any tier (the identity claim's rounding bound)
MIN_DEPTHS_FOR_RATE = 64         # the largest kernel depth of every tier is at least this
SCALE_ONE_MIN_DEPTH = 32         # the second-largest kernel depth: where the s = 1 collapse-rate correction <= 3%
KERAS_MIN_NETS = 50              # per point and sampler: below this the KS test has little power


@dataclasses.dataclass(frozen=True)
class CommutativityConfig:
  seeds: tuple[int, ...]
  dtype: str = "float64"
  activations: tuple[str, ...] = ("relu",)
  input_correlations: tuple[float, ...] = INPUT_CORRELATIONS
  cifar_pairs: int = 0                    # pairs of CIFAR-10 training images (0: synthetic inputs only)
  kernel_depths: tuple[int, ...] = (4, 8, 16, 32, 64)   # infinite-width kernels (library)
  widths: tuple[int, ...] = (16, 32, 64, 128)           # Monte Carlo grid
  depths: tuple[int, ...] = (4, 16, 32, 64)
  nets_per_seed: int = 16
  contrast: bool = True                   # Monte Carlo grid also for s = 1 and s = 1/L
  gauss_widths: tuple[int, ...] = (16, 64, 256)
  gauss_depths: tuple[int, ...] = (4, 16, 64)
  gauss_samples: int = 1_000_000          # neurons x nets per seed and (L, n)
  keras_points: tuple[tuple[int, int], ...] = ((64, 4), (64, 16))   # (n, L) of the Keras vs Gram check
  keras_nets: int = 200                   # nets per point and sampler, split evenly over the seeds (rounded up)

  def __post_init__(self):
    unknown = set(self.activations) - set(ACTIVATIONS)
    if unknown:
      raise ValueError(f"unknown activations {sorted(unknown)}; choose from {ACTIVATIONS}")
    if len(self.input_correlations) + 1 > MAX_SYNTHETIC_POINTS or max(self.kernel_depths) > MAX_KERNEL_DEPTH:
      raise ValueError(f"at most {MAX_SYNTHETIC_POINTS - 1} input correlations and kernel depths <= "
                       f"{MAX_KERNEL_DEPTH} (the rounding bounds of families.py assume them)")
    if max(self.kernel_depths) < MIN_DEPTHS_FOR_RATE:
      raise ValueError(f"kernel_depths must reach {MIN_DEPTHS_FOR_RATE} for the rate claim")
    if len(self.kernel_depths) < 3 or len(self.widths) < 3 or len(self.joint_sizes) < 3:
      raise ValueError("need at least 3 kernel depths, 3 widths and 3 joint sizes n = L (power-law fits)")
    if len(self.seeds) < 2:
      raise ValueError("need at least 2 seeds (claims and references test seed spread)")
    if sorted(self.kernel_depths)[-2] < SCALE_ONE_MIN_DEPTH:
      raise ValueError(f"the second-largest kernel depth must be >= {SCALE_ONE_MIN_DEPTH} (s = 1 collapse-rate claim)")
    if self.keras_points and self.keras_nets < KERAS_MIN_NETS:
      raise ValueError(f"keras_nets must be >= {KERAS_MIN_NETS} (KS tests), got {self.keras_nets}")
    if any(n < 1 or depth < 1 for n, depth in self.keras_points):
      raise ValueError(f"keras_points must be (width, depth) pairs >= 1, got {self.keras_points}")

  @property
  def keras_nets_per_seed(self) -> int:
    return -(-self.keras_nets // len(self.seeds))

  @property
  def joint_sizes(self) -> tuple[int, ...]:
    """n = L points of the grid (the joint path)."""
    return tuple(sorted(set(self.widths) & set(self.depths)))


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def smoke() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=smoke
  Expected result: every claim passes; ReLU only, synthetic inputs, widths 16-128, depths 4-64."""
  return CommutativityConfig(seeds=(0, 1, 2, 3))


@registry.tier("small", hardware=preflight.CI_CPU, expected_runtime_s=300)
def small() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=small --mirrors=cifar10=/work/shared/data/cifar10-exact-subset
  Expected result: every claim passes for ReLU and Erf, synthetic pairs and 4 CIFAR-10 pairs; widths 16-1024,
  depths 4-256."""
  return CommutativityConfig(
      seeds=tuple(range(8)), activations=ACTIVATIONS, cifar_pairs=4,
      kernel_depths=(4, 8, 16, 32, 64, 128, 256),
      widths=(16, 32, 64, 128, 256, 512, 1024), depths=(4, 8, 16, 32, 64, 128, 256),
      gauss_widths=(16, 64, 256), gauss_depths=(4, 16, 64), gauss_samples=2_000_000,
      keras_points=((64, 4), (64, 16), (128, 32)))


PAPER_HARDWARE = preflight.accelerator_host(
    "1 GPU host (16 CPU cores used by numpy)",
    gflops={dtype: 8 * gflops for dtype, gflops in preflight.CI_CPU_GFLOPS.items()},
    host_gflops={dtype: 8 * gflops for dtype, gflops in preflight.CI_CPU_HOST_GFLOPS.items()},
    basis="assumed by the runtime ESTIMATE: the Monte Carlo on 16 cores, 8x the 2-core CI machine")


@registry.tier("paper", hardware=PAPER_HARDWARE, expected_runtime_s=3600)
def paper() -> CommutativityConfig:
  """Command: python -m harness run --experiment=commutativity --tier=paper --mirrors=cifar10=FOLDER
  The Monte Carlo is numpy on the host's CPU cores, the kernels use the accelerator. The runtime is an ESTIMATE
  extrapolated from the small tier on 2 CPU cores (Monte Carlo cost proportional to seeds x nets x sum(n) x
  sum(L)), not measured on a GPU host.
  Expected result: every claim passes, widths to 4096, depths to 1024, 16 seeds."""
  return CommutativityConfig(
      seeds=tuple(range(16)), activations=ACTIVATIONS, cifar_pairs=8,
      kernel_depths=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
      widths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096), depths=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
      gauss_widths=(16, 64, 256, 1024), gauss_depths=(4, 16, 64, 256), gauss_samples=16_000_000,
      keras_points=((64, 4), (64, 16), (256, 64), (1024, 16)), keras_nets=400)
