"""Config and tiers of `width_consistency`."""
from __future__ import annotations

import dataclasses

from harness import preflight, registry

STATS_EXAMPLES = 2048          # channel mean/std from the stream's first images (they are trained on too)
# the CNN's base rates 2^k: brackets the best at the base width (2^5 in a sweep over 2^0..2^6 at the small tier)
CNN_LOG2_LR_GRID = (3.0, 4.0, 5.0, 6.0, 7.0)
MODELS = ("mlp", "cnn", "resnet18")  # harness.nets spec MLP and small CNN (CPU tiers) / nets.cifar_resnet (paper)


@dataclasses.dataclass(frozen=True)
class WidthConfig:
  seeds: tuple[int, ...]
  dtype: str = "float32"
  train_dataset: str = "cifar10_jpeg"   # the stream (its own dataset id: JPEG-decoded pixels)
  eval_dataset: str = "cifar10"         # exact-pixel test images
  n_eval: int = 1000
  downsample: int = 4                   # 32x32 -> 8x8
  model: str = "mlp"
  depth: int = 2                        # mlp: hidden layers
  widths: tuple[int, ...] = (32, 64, 128, 256)   # mlp: hidden units; resnet18: from width_multipliers
  width_multipliers: tuple[float, ...] = ()      # resnet18: x the stage channels (64, 128, 256, 512)
  resnet_blocks: tuple[int, ...] = (2, 2, 2, 2)  # resnet18: basic blocks per stage (ResNet-18)
  hold_stream: bool = True              # keep the whole stream in memory (else re-read it for each net)
  # the small CNN (phase cnn, muP only, on the same stream; none when empty): channel widths, seeds, its base-rate grid
  cnn_widths: tuple[int, ...] = ()
  cnn_seeds: int = 4
  cnn_log2_lr_grid: tuple[float, ...] = ()
  batch_size: int = 64
  steps: int = 200
  log_steps: tuple[int, ...] = (0, 25, 50, 100, 200)
  momentum: float = 0.0
  jit_compile: bool = True              # TensorFlow: XLA-compile train steps and Hessian-vector products (off: for
                                        # tiny nets, whose compile time exceeds their run time)
  # base learning rates 2^k, per parameterization (muP's SGD rates are x N / base width on top: nets.mup_lr_multipliers)
  log2_lr_grid: dict = dataclasses.field(default_factory=lambda: {"mup": (3.0, 4.0, 5.0, 6.0, 7.0),
                                                                  "sp": (-4.0, -3.0, -2.0, -1.0, 0.0)})
  sweep_steps: int = 50
  sweep_seeds: tuple[int, ...] = (0,)
  ensemble_size: int = 2                # K nets of the narrowest width per ensemble (disjoint groups of seeds)
  coordinate_steps: int = 3
  coordinate_seeds: int = 1             # the first seeds: the coordinate check needs few
  preact_examples: int = 256            # evaluation images whose last-hidden-layer pre-activations are compared
  sharpness_seeds: int = 2              # the first seeds: sharpness along training (Hessian power iteration)
  sharpness_examples: int = 256         # its fixed batch: the first training examples of the stream
  sharpness_iterations: int = 20

  def __post_init__(self):
    if self.model not in MODELS:
      raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
    if self.model == "resnet18":
      from harness import nets  # pylint: disable=import-outside-toplevel  (keras only for this model)
      if list(self.width_multipliers) != sorted(set(self.width_multipliers)):
        raise ValueError(f"width multipliers must be strictly increasing, got {self.width_multipliers}")
      if len(self.resnet_blocks) != len(nets.resnet.STAGE_CHANNELS) or min(self.resnet_blocks) < 1:
        raise ValueError(f"resnet_blocks needs a count >= 1 for each of the 4 stages, got {self.resnet_blocks}")
      object.__setattr__(self, "widths", tuple(nets.stage_channels(k)[0] for k in self.width_multipliers))
    elif self.width_multipliers:
      raise ValueError("width_multipliers are for model='resnet18'; the MLP takes widths")
    if list(self.widths) != sorted(set(self.widths)) or len(self.widths) < 4:
      raise ValueError(f"widths must be at least 4 (3 below the widest for a slope), strictly increasing, got {self.widths}")
    if self.log_steps[0] != 0 or self.log_steps[-1] != self.steps or list(self.log_steps) != sorted(set(self.log_steps)):
      raise ValueError(f"log_steps must increase from 0 to steps={self.steps}, got {self.log_steps}")
    if len(self.seeds) < 2 * self.ensemble_size or len(self.seeds) % self.ensemble_size:
      raise ValueError(f"need a multiple (>= 2) of ensemble_size={self.ensemble_size} seeds, got {len(self.seeds)}")
    if not self.sweep_seeds or not set(self.sweep_seeds) <= set(self.seeds):
      raise ValueError("sweep_seeds must be among the seeds")
    if not 1 <= self.sharpness_seeds <= len(self.seeds) or not 1 <= self.coordinate_seeds <= len(self.seeds):
      raise ValueError(f"sharpness_seeds and coordinate_seeds must be in [1, {len(self.seeds)}]")
    if not 0 < self.preact_examples <= self.n_eval or self.sharpness_examples < 1:
      raise ValueError(f"need 0 < preact_examples <= n_eval={self.n_eval} and sharpness_examples >= 1")
    if self.cnn_widths and (list(self.cnn_widths) != sorted(set(self.cnn_widths)) or len(self.cnn_widths) < 4 or
                            not 2 <= self.cnn_seeds <= len(self.seeds) or len(self.cnn_log2_lr_grid) < 3):
      raise ValueError(f"the CNN needs >= 4 strictly increasing widths (got {self.cnn_widths}), 2 <= cnn_seeds <= "
                       f"{len(self.seeds)} (got {self.cnn_seeds}) and >= 3 rates (got {self.cnn_log2_lr_grid})")
    if set(self.log2_lr_grid) != {"mup", "sp"} or any(len(g) < 3 for g in self.log2_lr_grid.values()):
      raise ValueError(f"log2_lr_grid needs >= 3 rates for each of mup and sp, got {self.log2_lr_grid}")

  @property
  def held_examples(self) -> int:
    """Examples kept in memory when the stream is not held: statistics, sharpness batch, coordinate batch."""
    return max(STATS_EXAMPLES, self.sharpness_examples, self.batch_size)

  @property
  def stream_examples(self) -> int:
    """Examples one run consumes (each used once; every width and seed reads the same ones)."""
    return max(self.steps * self.batch_size, self.sweep_steps * self.batch_size,
               self.coordinate_steps * self.batch_size, self.sharpness_examples)


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=120)
def smoke() -> WidthConfig:
  """Command: python -m harness run --experiment=width_consistency --tier=smoke (HARNESS_MIRRORS with cifar10_jpeg and cifar10)
  Expected result: the loss curves, disagreement, variance, ensemble, pre-activation, sharpness and coordinate
  metrics of MLPs of 4 widths x 4 seeds and the loss curves and disagreement of CNNs of 4 widths x 2 seeds, guarded by
  the blessed references; claims needing more widths and seeds are reported, not asserted."""
  return WidthConfig(seeds=(0, 1, 2, 3), cnn_widths=(8, 16, 32, 64), cnn_seeds=2, cnn_log2_lr_grid=CNN_LOG2_LR_GRID)


@registry.tier("small", hardware=preflight.CI_CPU, expected_runtime_s=600)
def small() -> WidthConfig:
  """Command: python -m harness run --experiment=width_consistency --tier=small (HARNESS_MIRRORS with cifar10_jpeg and cifar10)
  Expected result: every claim passes with its test; MLPs of 5 widths 64-1024 x 8 seeds and CNNs of 16-128 channels x
  8 seeds, 780 online steps of 64 images (49,920 of the 50,000 cifar10_jpeg training images, each once), evaluated
  on 1,000 exact-pixel test images."""
  return WidthConfig(seeds=tuple(range(8)), widths=(64, 128, 256, 512, 1024), steps=780,
                     log_steps=(0, 50, 100, 200, 400, 780), coordinate_seeds=2,
                     sharpness_seeds=4, cnn_widths=(16, 32, 64, 128), cnn_seeds=8, cnn_log2_lr_grid=CNN_LOG2_LR_GRID)


def resnet_training_flop(config: "WidthConfig") -> float:
  """FLOP of the paper tier's trainings (the estimate behind its runtime): 2 FLOP per multiply-accumulate
  (harness.nets.resnet.forward_macs, 0.56 GMAC per image at multiplier 1) x 3 for forward and backward, per image
  served, over every width, seed and parameterization, and the learning-rate sweeps."""
  from harness.nets import resnet  # pylint: disable=import-outside-toplevel
  per_image = sum(6.0 * resnet.forward_macs(k, blocks=config.resnet_blocks) for k in config.width_multipliers)
  trainings = len(config.seeds) * config.steps + len(config.sweep_seeds) * config.sweep_steps * max(
      len(g) for g in config.log2_lr_grid.values())
  return 2 * per_image * trainings * config.batch_size


PAPER_HARDWARE = preflight.accelerator_host(
    "1 GPU (H100 class), 64 GB host memory", kinds=("GPU",), host_memory_gb=64,
    gflops={"float32": 150_000.0, "float64": 30_000.0},
    basis="assumed by the runtime ESTIMATE: 150 TFLOP/s achieved (TF32 matmuls on an H100); float64 a fifth of it")


@registry.tier("paper", hardware=PAPER_HARDWARE, expected_runtime_s=6 * 3600)
def paper() -> WidthConfig:
  """Command: python -m harness run --experiment=width_consistency --tier=paper (CIFAR-5m prepared for TFDS, or
  HARNESS_MIRRORS=cifar5m=<folder of part0..5.npz>)
  The runtime is an ESTIMATE, not measured (no GPU run of this tier yet): `resnet_training_flop` gives 3.3e18 FLOP
  (ResNet-18 at 0.5x-8x: 283 GFLOP per image over the five widths, 1.28M images per net, 4 seeds x 2
  parameterizations, sweeps 12.5% more), 5-6 hours at an achieved 150-200 TFLOP/s (TF32 matmuls on an H100). The
  stream is re-read from disk for every net (1.28M images a run are never held).
  Expected result: every claim passes, as at the small tier, on the CIFAR ResNet-18 family, widths 0.5x to 8x the
  standard 64 channels (for the paper's CIFAR-5m experiments; the exact variant it trains was not checked against
  its text here)."""
  return WidthConfig(seeds=(0, 1, 2, 3), model="resnet18", width_multipliers=(0.5, 1.0, 2.0, 4.0, 8.0),
                     train_dataset="cifar5m", eval_dataset="cifar5m", n_eval=10000, downsample=1, hold_stream=False,
                     batch_size=128, steps=10000, log_steps=(0, 250, 500, 1000, 2500, 5000, 10000),
                     log2_lr_grid={"mup": (-2.0, 0.0, 2.0, 4.0, 6.0), "sp": (-8.0, -6.0, -4.0, -2.0, 0.0)},
                     sweep_steps=1000, coordinate_seeds=2, sharpness_seeds=4, sharpness_examples=512)
