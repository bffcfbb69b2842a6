"""What a `commutativity` tier's run needs (harness/preflight.py): its phases, the CIFAR-10 pool its input pairs are
drawn from, its peak memory. The peak is the simulator's arrays (harness/residual_gram.py): (nets, width, inputs)
floats for Y_0, Y_l, phi(Y_l) and the Gaussian draws, at the widest Monte Carlo point or the Gaussianity phase's
samples, whichever is larger. The Monte Carlo is numpy: the runtime scales with the host's matmul throughput."""
from __future__ import annotations

from typing import Sequence

from harness import preflight
from harness.preflight import DataNeed, array_bytes

from benchmarks.commutativity.config import CIFAR_POOL, CommutativityConfig

PHASES = ("inputs", "flow", "infinite_width", "monte_carlo", "keras", "gaussianity")
LIVE_ARRAYS = 4   # Y_0, Y_l, phi(Y_l), the standard normal draws of one step


def needs(config: CommutativityConfig, seeds: Sequence[int]) -> preflight.Needs:
  del seeds
  data = (DataNeed("cifar10", "train", CIFAR_POOL, "inputs"),) if config.cifar_pairs else ()
  inputs = len(config.input_correlations) + 1 + 2 * config.cifar_pairs
  monte_carlo = LIVE_ARRAYS * array_bytes(config.nets_per_seed, max(config.widths), inputs, dtype=config.dtype)
  gaussianity = LIVE_ARRAYS * array_bytes(config.gauss_samples, dtype=config.dtype)
  part = (("Monte Carlo nets (widest point)", monte_carlo) if monte_carlo >= gaussianity
          else ("Gaussianity samples", gaussianity))
  return preflight.Needs(phases=PHASES, datasets=data, memory=(part,), compute=preflight.HOST)
