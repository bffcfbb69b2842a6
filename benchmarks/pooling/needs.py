"""What a `pooling` tier's run needs (harness/preflight.py): its phases, the CIFAR-10 examples each reads, its peak
memory. The peak is the kernels phase of the largest architecture: the NNGP and NTK train and test blocks held for
one seed, the regression's factor and the preprocessed images of every seed in host memory, and one CNN-GAP kernel
call's intermediates on the device.

A CNN-GAP call's memory above the process (measured, docs/performance.md "Memory of a kernel call": 0.29-0.41 GB at
tiles of 16-32, 0.57 GB at 256 x 256 8x8 images, 1.5 GB at 512, 0.64 GB at 64 x 64 32x32 images) fits a fixed
part plus tile^2 x pixels x TILE_PAIR_PIXEL_BYTES: the pixel covariance is carried in skewed groups whose live part
grows with the pixel count, not its square."""
from __future__ import annotations

from typing import Sequence

from harness import preflight
from harness.preflight import DataNeed, array_bytes

from benchmarks.pooling.config import PoolingConfig
from benchmarks.pooling.phases import THEORY_N_TEST, THEORY_N_TRAIN

IMAGE_PIXELS = 32 * 32
CHANNELS = 3
KERNEL_CALL_FIXED_BYTES = 0.35e9      # compiled programs and buffers of one kernel call (the fit above)
TILE_PAIR_PIXEL_BYTES = 73.0          # per pair of inputs in a tile and pixel (the fit above, float64)


def needs(config: PoolingConfig, seeds: Sequence[int]) -> preflight.Needs:
  blocks = max(seeds) + 1  # seed s reads the s-th disjoint block of each split (data.blocks)
  phases = ["theory"]
  data = [DataNeed("cifar10", "train", THEORY_N_TRAIN, "theory"), DataNeed("cifar10", "test", THEORY_N_TEST, "theory")]
  memory: list[tuple[str, float]] = []
  device: list[tuple[str, float]] = []
  if config.architectures:
    if config.cnn_theory_depths:
      phases.append("cnn_theory")
      data += [DataNeed("cifar10", "train", THEORY_N_TRAIN, "cnn_theory"),
               DataNeed("cifar10", "test", THEORY_N_TEST, "cnn_theory")]
    phases += ["data", "kernels", "finite"]
    data += [DataNeed("cifar10", "train", config.n_train * blocks, "data"),
             DataNeed("cifar10", "test", config.n_test * blocks, "data")]
    n, m, tile = config.n_train, config.n_test, min(config.kernel_tile_size, config.n_train)
    pixels = IMAGE_PIXELS // config.downsample ** 2
    memory += [
        ("kernel blocks (NNGP + NTK, train and test)", 2 * array_bytes(n, n + m, dtype=config.dtype)),
        # dense: the factor in memory; blocked (harness/nets/blocked_cholesky.py): on disk, three n x block panels held
        ("regression factor", array_bytes(n, n) if config.solver_block_size is None
         else 3 * array_bytes(n, min(config.solver_block_size, n))),
        ("preprocessed images", array_bytes((n + m) * blocks, pixels * CHANNELS, dtype=config.dtype)),
    ]
    device.append(("kernel call intermediates", KERNEL_CALL_FIXED_BYTES + TILE_PAIR_PIXEL_BYTES * tile ** 2 * pixels))
  if config.heatmap:
    phases.append("heatmap")
    data += [DataNeed("cifar10", "train", config.heatmap_n_train, "heatmap"),
             DataNeed("cifar10", "test", config.heatmap_n_test, "heatmap")]
  return preflight.Needs(phases=tuple(phases), datasets=tuple(data), memory=tuple(memory), device_memory=tuple(device))
