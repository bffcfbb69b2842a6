"""Config and tiers of `width_consistency`."""
from __future__ import annotations

import dataclasses

from harness import registry

STATS_EXAMPLES = 2048          # channel mean/std from the stream's first images (they are trained on too)


@dataclasses.dataclass(frozen=True)
class WidthConfig:
  seeds: tuple[int, ...]
  dtype: str = "float32"
  train_dataset: str = "cifar10_jpeg"   # the stream (its own dataset id: JPEG-decoded pixels)
  eval_dataset: str = "cifar10"         # exact-pixel test images
  n_eval: int = 1000
  downsample: int = 4                   # 32x32 -> 8x8
  depth: int = 2                        # hidden layers
  widths: tuple[int, ...] = (32, 64, 128, 256)
  batch_size: int = 64
  steps: int = 200
  log_steps: tuple[int, ...] = (0, 25, 50, 100, 200)
  momentum: float = 0.0
  # base learning rates 2^k, per parameterization (muP's SGD rates are x N / base width on top: nets.mup_lr_multipliers)
  log2_lr_grid: dict = dataclasses.field(default_factory=lambda: {"mup": (3.0, 4.0, 5.0, 6.0, 7.0),
                                                                  "sp": (-4.0, -3.0, -2.0, -1.0, 0.0)})
  sweep_steps: int = 50
  sweep_seeds: tuple[int, ...] = (0,)
  ensemble_size: int = 2                # K nets of the narrowest width per ensemble (disjoint groups of seeds)
  coordinate_steps: int = 3
  coordinate_seeds: int = 1             # the first seeds: the coordinate check needs few

  def __post_init__(self):
    if list(self.widths) != sorted(set(self.widths)) or len(self.widths) < 4:
      raise ValueError(f"widths must be at least 4 (3 below the widest for a slope), strictly increasing, got {self.widths}")
    if self.log_steps[0] != 0 or self.log_steps[-1] != self.steps or list(self.log_steps) != sorted(set(self.log_steps)):
      raise ValueError(f"log_steps must increase from 0 to steps={self.steps}, got {self.log_steps}")
    if len(self.seeds) < 2 * self.ensemble_size or len(self.seeds) % self.ensemble_size:
      raise ValueError(f"need a multiple (>= 2) of ensemble_size={self.ensemble_size} seeds, got {len(self.seeds)}")
    if not self.sweep_seeds or not set(self.sweep_seeds) <= set(self.seeds):
      raise ValueError("sweep_seeds must be among the seeds")
    if set(self.log2_lr_grid) != {"mup", "sp"} or any(len(g) < 3 for g in self.log2_lr_grid.values()):
      raise ValueError(f"log2_lr_grid needs >= 3 rates for each of mup and sp, got {self.log2_lr_grid}")

  @property
  def stream_examples(self) -> int:
    """Examples one run consumes (each used once; every width and seed reads the same ones)."""
    return max(self.steps, self.sweep_steps, self.coordinate_steps) * self.batch_size


@registry.tier("smoke", hardware="2 CPU cores", expected_runtime_s=120)
def smoke() -> WidthConfig:
  """Command: python -m harness run --experiment=width_consistency --tier=smoke (HARNESS_MIRRORS with cifar10_jpeg and cifar10)
  Expected result: the loss curves, disagreement, variance, ensemble and coordinate metrics of 3 widths x 4 seeds,
  guarded by the blessed references; claims needing more widths and seeds are reported, not asserted."""
  return WidthConfig(seeds=(0, 1, 2, 3))


@registry.tier("small", hardware="2 CPU cores", expected_runtime_s=600)
def small() -> WidthConfig:
  """Command: python -m harness run --experiment=width_consistency --tier=small (HARNESS_MIRRORS with cifar10_jpeg and cifar10)
  Expected result: every claim passes with its test; 5 widths 64-1024 x 8 seeds, 780 online steps of 64 images
  (49,920 of the 50,000 cifar10_jpeg training images, each once), evaluated on 1,000 exact-pixel test images."""
  return WidthConfig(seeds=tuple(range(8)), widths=(64, 128, 256, 512, 1024), steps=780,
                     log_steps=(0, 50, 100, 200, 400, 780), coordinate_seeds=2)
