"""Config and tiers of `finite_vs_infinite`."""
from __future__ import annotations

import dataclasses

from harness import preflight, registry

ARCHITECTURES = ("fcn", "cnn_flatten", "cnn_gap", "resnet")
SETTINGS = ("small_lr", "large_lr", "weight_decay")
LR_FACTOR = 0.5          # small rate: eta = LR_FACTOR x the kernel's critical rate 2 N k / lambda_max
LARGE_LR_FACTOR = 1.25   # large rate: above the kernel's critical rate (its gradient descent diverges), trainable
WEIGHT_DECAY_TIME = 0.5  # weight decay wd with wd x t = this: the weights shrink by exp(-0.5) over training alone


@dataclasses.dataclass(frozen=True)
class FiniteVsInfiniteConfig:
  seeds: tuple[int, ...]
  dtype: str = "float64"          # analytic kernels and kernel predictions
  finite_dtype: str = "float32"   # finite nets and their empirical NTKs
  # data: official train images [0, n_train) and test images [0, n_test), 8x8 after average pooling
  n_train: int = 128
  n_test: int = 128
  downsample: int = 4
  ntk_points: int = 32            # the first ntk_points training images: empirical NTK against the analytic one
  # networks: `depth` hidden layers (FCN, CNNs) or residual blocks (resnet), ReLU, NTK parameterisation
  architectures: tuple[str, ...] = ARCHITECTURES
  depth: int = 2
  fcn_widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
  conv_widths: tuple[int, ...] = (8, 16, 32, 64, 128)
  # the ensemble-bias study (phases.run_bias): many seeds, narrower widths (package docstring: why)
  bias_architectures: tuple[str, ...] = ("fcn", "cnn_gap")
  bias_fcn_widths: tuple[int, ...] = (128, 256, 512)
  bias_conv_widths: tuple[int, ...] = (32, 64, 128)
  bias_seeds: tuple[int, ...] = tuple(range(1000, 1032))
  # full-batch gradient descent on MSE (harness.training), time t = eta x steps
  steps: int = 64
  settings: tuple[str, ...] = SETTINGS
  setting_widths: int = 2         # the large-rate and weight-decay settings run at this many widest widths (narrow
                                  # nets diverge above the kernel's critical rate, and the claims read the widest)
  lr_factor: float = LR_FACTOR
  large_lr_factor: float = LARGE_LR_FACTOR
  weight_decay_time: float = WEIGHT_DECAY_TIME
  # precision of kernel regression: FCN kernels on growing training sets, float32 against float64
  precision_sizes: tuple[int, ...] = (250, 500, 1000, 2000, 4000)
  precision_n_test: int = 500

  def __post_init__(self):
    unknown = set(self.architectures) - set(ARCHITECTURES) or set(self.settings) - set(SETTINGS)
    if unknown:
      raise ValueError(f"unknown architectures or settings {sorted(unknown)}")
    if "small_lr" not in self.settings:
      raise ValueError("settings must include small_lr (the kernel regime every other setting is set against)")
    for name, widths in (("fcn_widths", self.fcn_widths), ("conv_widths", self.conv_widths)):
      if len(widths) < 3 or list(widths) != sorted(set(widths)):
        raise ValueError(f"{name} must be at least three increasing widths, got {widths}")
    if self.setting_widths < 1:
      raise ValueError(f"setting_widths must be >= 1, got {self.setting_widths}")
    if not 0 < self.ntk_points <= self.n_train:
      raise ValueError(f"ntk_points must be in 1..n_train={self.n_train}, got {self.ntk_points}")
    if len(self.seeds) < 3:
      raise ValueError("the ensembles need at least three seeds")
    if set(self.bias_architectures) - set(self.architectures):
      raise ValueError(f"bias_architectures {self.bias_architectures} must be among architectures")
    if self.bias_architectures and (len(self.bias_seeds) < 4 or set(self.bias_seeds) & set(self.seeds)):
      raise ValueError("the bias study needs at least four seeds (two pairs), none of them the run's seeds")
    kinds = {"fcn" if arch == "fcn" else "conv" for arch in self.bias_architectures}
    for kind, name, widths, main in (("fcn", "bias_fcn_widths", self.bias_fcn_widths, self.fcn_widths),
                                     ("conv", "bias_conv_widths", self.bias_conv_widths, self.conv_widths)):
      if kind in kinds and (len(widths) < 3 or list(widths) != sorted(set(widths)) or set(widths) - set(main)):
        raise ValueError(f"{name} must be at least three increasing widths among the main ones {main} (the bias "
                         f"claim compares with single nets there), got {widths}")

  def widths(self, arch: str) -> tuple[int, ...]:
    return self.fcn_widths if arch == "fcn" else self.conv_widths

  def bias_widths(self, arch: str) -> tuple[int, ...]:
    return self.bias_fcn_widths if arch == "fcn" else self.bias_conv_widths


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=90)
def smoke() -> FiniteVsInfiniteConfig:
  """Command: python -m harness run --experiment=finite_vs_infinite --tier=smoke (HARNESS_MIRRORS, cifar10 exact pixels)
  Expected result: FCN and CNN-GAP at three widths, 4 seeds, 32 training images; the slope claims are reported, not
  asserted (three widths and four seeds do not resolve them); the blessed numbers guard against regressions."""
  return FiniteVsInfiniteConfig(seeds=(0, 1, 2, 3), n_train=32, n_test=32, ntk_points=16,
                                architectures=("fcn", "cnn_gap"), fcn_widths=(64, 256, 1024), conv_widths=(8, 32, 128),
                                steps=24, settings=("small_lr", "large_lr"), bias_architectures=("fcn",),
                                bias_fcn_widths=(64, 256, 1024), bias_seeds=tuple(range(1000, 1008)),
                                precision_sizes=(250, 500, 1000), precision_n_test=250)


@registry.tier("small", hardware=preflight.CI_CPU, expected_runtime_s=1100)
def small() -> FiniteVsInfiniteConfig:
  """Command: python -m harness run --experiment=finite_vs_infinite --tier=small (HARNESS_MIRRORS, cifar10 exact pixels)
  Expected result: every asserted claim passes: all four architectures, widths over 16x, 8 seeds, 128 training
  images, float32/float64 kernel regression on up to 4000 images. No ensemble-bias study (claims.py: it needs the
  paper tier's seeds), no training-dynamics rates of CNN-Flatten (not lazy at 128 channels): reported, not asserted."""
  return FiniteVsInfiniteConfig(seeds=tuple(range(8)), ntk_points=24, bias_architectures=())


PAPER_HARDWARE = preflight.accelerator_host(
    "1 GPU or TPU host", gflops={"float32": 50_000.0, "float64": 10_000.0},
    basis="assumed by the runtime ESTIMATE (not measured): 50 TFLOP/s float32 on the nets, 10 TFLOP/s float64 on "
          "the kernels")


@registry.tier("paper", hardware=PAPER_HARDWARE, expected_runtime_s=6 * 3600)
def paper() -> FiniteVsInfiniteConfig:
  """Command: python -m harness run --experiment=finite_vs_infinite --tier=paper (full CIFAR-10 via TFDS or mirror)
  The runtime is an ESTIMATE, not measured (no accelerator was available): widths to 2048 units / 512 channels,
  32x32 images, 1000 training images, 16 seeds, and 256 seeds for the ensemble-bias study (the FCN, CNN-GAP and the
  residual CNN); the empirical NTKs of the widest CNNs and the bias study's trainings dominate.
  Expected result: every claim passes, with narrower slope intervals than the small tier."""
  return FiniteVsInfiniteConfig(seeds=tuple(range(16)), n_train=1000, n_test=500, downsample=1, ntk_points=64,
                                fcn_widths=(128, 256, 512, 1024, 2048), conv_widths=(32, 64, 128, 256, 512),
                                steps=256, bias_architectures=("fcn", "cnn_gap", "resnet"),
                                bias_fcn_widths=(256, 512, 1024, 2048), bias_conv_widths=(64, 128, 256, 512),
                                bias_seeds=tuple(range(1000, 1256)), precision_sizes=(1000, 2000, 5000, 10000, 20000),
                                precision_n_test=2000)
