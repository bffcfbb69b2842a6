"""A test-only experiment for the harness core (registered via HARNESS_EXPERIMENT_MODULES).

It estimates the variance of N(0, 1) by Monte Carlo per seed, so its numbers have a known theory value
(1) and a known seed-to-seed spread (sqrt(2/n)), and optionally loads a dataset to exercise the data layer.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.stats

from harness import claims, preflight, registry
from harness.families import Family

WELCH = {"kind": "statistical", "test": "welch_t", "alpha": 0.01, "alternative": "two-sided"}
MC_VARIANCE = Family("mc_variance/{dist}", unit="1", description="sample variance of n_samples draws",
                     rule=WELCH, choices={"dist": ("normal",)})
NUM_EXAMPLES = Family("data/num_examples", unit="images", description="examples loaded",
                      rule={"kind": "absolute", "atol": 0})
QUANTILE = Family("normal_quantile/p={p:g}", unit="1", description="N(0, 1) quantile by scipy (deterministic)",
                  rule={"kind": "absolute", "atol": 1e-12})
THEORY_VARIANCE = 1.0   # Var N(0, 1)


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
  n_samples: int = 4000
  dtype: str = "float64"
  dataset: str | None = None
  dataset_size: int = 8
  buffer_bytes: float = 0.0   # memory the pre-flight is told the run holds (a test of the memory check)


@registry.tier("smoke", hardware=preflight.CI_CPU, expected_runtime_s=1)
def smoke() -> ToyConfig:
  """Command: python -m harness run --experiment=toy --tier=smoke
  Expected result: variance within 0.1 of 1, all claims pass."""
  return ToyConfig()


@registry.tier("small", hardware=preflight.CI_CPU, expected_runtime_s=5)
def small() -> ToyConfig:
  """Command: python -m harness run --experiment=toy --tier=small --mirrors=cifar10=FOLDER
  Expected result: as smoke, plus a CIFAR-10 subset loaded."""
  return ToyConfig(dataset="cifar10")


TOY_ACCELERATOR = preflight.accelerator_host("64 GPUs, 10 TB of memory (test-only: no machine has it)", accelerators=64,
                                             host_memory_gb=10_000, gflops={"float32": 1e5, "float64": 1e4},
                                             basis="test-only figure")


@registry.tier("paper", hardware=TOY_ACCELERATOR, expected_runtime_s=3600)
def paper() -> ToyConfig:
  """Command: python -m harness run --experiment=toy --tier=paper --force
  Expected result: the pre-flight stops it (not 64 GPUs, not 10 TB); with --force it runs as smoke."""
  return ToyConfig(buffer_bytes=1e13)


def needs(config: ToyConfig, seeds) -> preflight.Needs:
  del seeds
  data = (preflight.DataNeed(config.dataset, "train", config.dataset_size, "data"),) if config.dataset else ()
  return preflight.Needs(phases=("sample", "data") if config.dataset else ("sample",), datasets=data,
                         memory=(("toy buffer", config.buffer_bytes),) if config.buffer_bytes else ())


def run(config: ToyConfig, ctx) -> None:
  with ctx.phase("sample"):
    for seed in ctx.seeds:
      x = np.random.default_rng(seed).normal(size=config.n_samples)
      ctx.record(MC_VARIANCE, float(x.var(ddof=1)), seed=seed, dist="normal")
      running = np.cumsum(x ** 2) / np.arange(1, x.size + 1)
      ctx.curve("running_second_moment", np.arange(1, x.size + 1)[::100], running[::100], seed=seed,
                x_label="samples", y_label="mean x^2")
  ctx.record(QUANTILE, float(scipy.stats.norm.ppf(0.975)), p=0.975)
  if config.dataset:
    with ctx.phase("data"):
      split = ctx.load_dataset(config.dataset, split="train", size=config.dataset_size, seed=0,
                               pool=config.dataset_size)
      ctx.record(NUM_EXAMPLES, float(len(split.labels)))


EXPERIMENT = registry.Experiment(
    name="toy",
    description="test-only: Monte Carlo variance of a standard normal",
    papers=(registry.Paper("1902.06720", "stand-in citation for a test experiment"),),
    families=(MC_VARIANCE, QUANTILE, NUM_EXAMPLES),
    claims=(
        claims.Claim("variance_is_one", "the sample variance of N(0,1) estimates 1",
                     claims.Close(MC_VARIANCE.at(dist="normal"), THEORY_VARIANCE, atol=0.1)),
        claims.Claim("variance_not_below_half", "the sample variance is not far below 1",
                     claims.AllWithin(MC_VARIANCE, low=0.5)),
    ),
    tiers=(smoke, small, paper),
    run=run,
    needs=needs,
)
