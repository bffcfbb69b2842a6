"""Config and tiers of `pooling`."""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from harness import preflight, registry

ARCHITECTURES = ("fcn", "cnn_flatten", "cnn_gap")
ZCA_REG = 0.1                         # ZCA regularizer, relative to the mean eigenvalue (harness.data.zca_matrix)
LR_FACTOR = 0.5                       # finite nets: learning rate / critical learning rate
SMALL_WIDTH, SMALL_EPOCHS = 64, 150


@dataclasses.dataclass(frozen=True)
class PoolingConfig:
  seeds: tuple[int, ...]
  dtype: str = "float64"
  # data: seed s takes official train images [s n_train, (s + 1) n_train) and test images [s n_test, ...)
  n_train: int = 256
  n_test: int = 256
  downsample: int = 4              # average-pool factor: 32x32 -> 8x8
  zca_reg: float | None = ZCA_REG  # None: no whitening
  # kernels
  architectures: tuple[str, ...] = ARCHITECTURES
  depth: int = 2                   # hidden layers of the kernels and nets the claims use
  extra_kernel_depths: tuple[int, ...] = ()  # depth sweep (metrics with a /depth=D suffix)
  kernel_tile_size: int = 512
  solver_block_size: int | None = None  # None: dense Cholesky in memory; else blocked, the factor in a temp file
  # finite nets
  width: int = 128                 # channels (CNN) or units (FCN)
  lr_factor: float = LR_FACTOR     # learning rate = lr_factor x critical (package docstring)
  epochs: int = 20
  eval_every: int = 10             # validation checks (early stopping on held-out training data)
  validation_fraction: float = 0.1
  batch_size: int | None = 64
  loss: str = "mse"
  finite_dtype: str = "float32"    # finite nets train in float32 (kernels use `dtype`)
  # theory of CNNs at depth (circular padding): downsampled images, depths for the NTK profile (none: no cnn_theory
  # phase, e.g. where a test looks at the finite nets only)
  cnn_theory_downsample: int = 8   # 32x32 -> 4x4
  cnn_theory_depths: tuple[int, ...] = (1, 2, 5, 10, 20)
  # colab heat map (paper tier)
  heatmap: bool = False
  heatmap_n_train: int = 256
  heatmap_n_test: int = 256
  heatmap_sigma_b2: float = 0.18
  heatmap_sigma_w2: tuple[float, ...] = tuple(np.round(np.linspace(0.5, 3.0, 40), 6))
  heatmap_depths: tuple[int, ...] = tuple(range(10)) + tuple(range(10, 110, 5))
  heatmap_times: tuple[float, ...] = (1.0, 8.0, 64.0, 512.0, 4096.0, math.inf)

  def __post_init__(self):
    unknown = set(self.architectures) - set(ARCHITECTURES)
    if unknown:
      raise ValueError(f"unknown architectures {unknown}")


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=60)
def smoke() -> PoolingConfig:
  """Command: python -m harness run --experiment=pooling --tier=smoke (HARNESS_MIRRORS with cifar10 exact pixels)
  Expected result: the theory claims pass; the accuracy comparisons (GAP vs Flatten) are reported but not asserted
  (128 training images per seed cannot resolve them); the blessed numbers guard against regressions."""
  return PoolingConfig(seeds=(0, 1), n_train=128, n_test=128, depth=2, width=32, epochs=20, eval_every=5,
                       cnn_theory_depths=(1, 2, 5))


@registry.tier("small", hardware=preflight.CI_CPU, expected_runtime_s=360)
def small() -> PoolingConfig:
  """Command: python -m harness run --experiment=pooling --tier=small (HARNESS_MIRRORS with cifar10 exact pixels)
  Expected result: every claim passes with significance; 4 seeds x (1000 train, 250 test) 8x8 images, depth 2.
  Measured (the blessed run): NTK test accuracy CNN-GAP 0.428 vs CNN-Flatten 0.381 vs FCN 0.343 (paired t
  p = 0.013); NNGP 0.426 vs 0.392 (p = 0.013); finite nets 0.344 vs 0.325 (p = 0.037)."""
  return PoolingConfig(seeds=(0, 1, 2, 3), n_train=1000, n_test=250, depth=2, width=SMALL_WIDTH, epochs=SMALL_EPOCHS,
                       cnn_theory_depths=(1, 2, 5, 10, 20, 50))


# The paper tier's regressions: blocked Cholesky (harness/nets/blocked_cholesky.py), the 40k-50k factors on disk.
PAPER_SOLVER_BLOCK_SIZE = 4096

# 96 GB of host memory: needs.py's peak estimate at this size is 75 GB (50k x 60k NNGP and NTK blocks 48 GB, one
# CNN-GAP kernel call at 512 x 512 32x32 images 20 GB, the blocked regression's three panels 4.9 GB; its factor and
# the diag_reg split's, 26 GB at most, are scratch files in $TMPDIR)
PAPER_HARDWARE = preflight.accelerator_host(
    "1 GPU or TPU host, >= 96 GB RAM", host_memory_gb=96, gflops={"float64": 10_000.0, "float32": 20_000.0},
    basis="assumed by the runtime ESTIMATE: 10 TFLOP/s achieved on the float64 kernels, float32 twice that")


@registry.tier("paper", hardware=PAPER_HARDWARE, expected_runtime_s=4 * 86400)
def paper() -> PoolingConfig:
  """Command: python -m harness run --experiment=pooling --tier=paper (full CIFAR-10 via TFDS); on a cluster add
  --engine=beam --pipeline_options="--runner=DataflowRunner ..." --work_dir=gs://BUCKET/tiles (WORKSPACE.md, "Many
  hosts"): every kernel tile of the five depths is one element of one pipeline, and a rerun resumes.
  The runtime is an ESTIMATE, not measured: the CNN-GAP kernels are 1.75e9 entries x 4.4e7 FLOP per layer (32x32
  pixels) at depths 3, 4, 6, 11, 21 (45 layers) = 3.5e18 FLOP, about 4 days on one accelerator at 10 TFLOP/s in
  float64 (WORKSPACE.md, "Many hosts": the cost table).
  Expected result: every claim passes; kernel accuracies by depth (CNTK-GAP vs CNTK-V, depths 3, 4, 6, 11, 21 on
  50k/10k) to set against Arora et al. 2019 Table 1 (no paper reference entries are stored: their values were not
  checked against the paper's text here); the colab's depth heat map."""
  return PoolingConfig(seeds=(0,), n_train=50000, n_test=10000, downsample=1, zca_reg=None, depth=3,
                       extra_kernel_depths=(4, 6, 11, 21), solver_block_size=PAPER_SOLVER_BLOCK_SIZE, width=512,
                       epochs=100, batch_size=128,
                       cnn_theory_downsample=4, cnn_theory_depths=(1, 2, 5, 10, 20, 50, 100), heatmap=True)
