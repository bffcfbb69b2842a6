"""What a `pooling` tier's run needs (harness/preflight.py): its phases, the CIFAR-10 examples each reads, its peak
memory. The peak is the kernels phase of the largest architecture: the NNGP and NTK train and test blocks held for
one seed, the regression's factor, one kernel tile's intermediates, and the preprocessed images of every seed."""
from __future__ import annotations

from typing import Sequence

from harness import preflight
from harness.preflight import DataNeed, array_bytes

from benchmarks.pooling.config import PoolingConfig
from benchmarks.pooling.phases import THEORY_N_TEST, THEORY_N_TRAIN

IMAGE_PIXELS = 32 * 32
CHANNELS = 3


def needs(config: PoolingConfig, seeds: Sequence[int]) -> preflight.Needs:
  blocks = max(seeds) + 1  # seed s reads the s-th disjoint block of each split (data.blocks)
  phases = ["theory"]
  data = [DataNeed("cifar10", "train", THEORY_N_TRAIN, "theory"), DataNeed("cifar10", "test", THEORY_N_TEST, "theory")]
  memory: list[tuple[str, float]] = []
  if config.architectures:
    phases += ["cnn_theory", "data", "kernels", "finite"]
    data += [DataNeed("cifar10", "train", THEORY_N_TRAIN, "cnn_theory"),
             DataNeed("cifar10", "test", THEORY_N_TEST, "cnn_theory"),
             DataNeed("cifar10", "train", config.n_train * blocks, "data"),
             DataNeed("cifar10", "test", config.n_test * blocks, "data")]
    n, m, tile = config.n_train, config.n_test, min(config.kernel_tile_size, config.n_train)
    pixels = IMAGE_PIXELS // config.downsample ** 2
    memory += [
        ("kernel blocks (NNGP + NTK, train and test)", 2 * array_bytes(n, n + m, dtype=config.dtype)),
        ("regression factor", array_bytes(n, n, dtype=config.dtype)),
        ("kernel tile intermediates", 2 * array_bytes(tile, tile, pixels, dtype=config.dtype)),
        ("preprocessed images", array_bytes((n + m) * blocks, pixels * CHANNELS, dtype=config.dtype)),
    ]
  if config.heatmap:
    phases.append("heatmap")
    data += [DataNeed("cifar10", "train", config.heatmap_n_train, "heatmap"),
             DataNeed("cifar10", "test", config.heatmap_n_test, "heatmap")]
  return preflight.Needs(phases=tuple(phases), datasets=tuple(data), memory=tuple(memory))
