"""Runs one experiment tier and writes its record. Plain functions; the CLI is a thin shell over them."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any

from harness import claims as claims_lib
from harness import distributed
from harness import environment, precision, preflight, records, registry
from harness.context import RunContext
from harness.errors import HarnessError

DEFAULT_RUNS_DIR = "runs"


def resolve_seeds(config: Any, n_seeds: int | None) -> tuple[int, ...]:
  """The tier's seeds, or `n_seeds` seeds 0..n-1 when given on the command line."""
  if n_seeds is not None:
    if n_seeds < 1:
      raise HarnessError(f"--seeds must be >= 1, got {n_seeds}")
    return tuple(range(n_seeds))
  seeds = getattr(config, "seeds", None)
  if seeds is None:
    raise HarnessError("the tier config declares no seeds")
  return tuple(seeds)


def resolve_dtype(config: Any, dtype: str | None) -> str:
  return precision.check_dtype(dtype or getattr(config, "dtype", "float32"), HarnessError, "--dtype")


def default_run_dir(experiment: str, tier: str, runs_dir: str = DEFAULT_RUNS_DIR) -> str:
  return os.path.join(runs_dir, records.new_run_id(experiment, tier))


def resolve(experiment: registry.Experiment, tier: registry.Tier, n_seeds: int | None,
            dtype: str | None) -> tuple[Any, tuple[int, ...], str]:
  """(config, seeds, dtype) of a tier with the command line's overrides; HarnessError on bad ones."""
  try:
    config = tier.config()
  except ValueError as e:  # the tier's config refuses its own settings (e.g. widths not increasing)
    raise HarnessError(f"{experiment.name} tier {tier.name}: {e}") from None
  if n_seeds is not None and hasattr(config, "seeds") and dataclasses.is_dataclass(config):
    try:
      config = dataclasses.replace(config, seeds=resolve_seeds(config, n_seeds))
    except ValueError as e:  # the tier's config refuses that many seeds (e.g. its ensembles need a multiple)
      raise HarnessError(f"--seeds={n_seeds}: {e}") from None
  seeds = resolve_seeds(config, None)
  dtype = resolve_dtype(config, dtype)
  if dataclasses.is_dataclass(config) and hasattr(config, "dtype"):
    config = dataclasses.replace(config, dtype=dtype)
  return config, seeds, dtype


def enable_determinism() -> None:
  """Deterministic ops for the rest of the process; HarnessError where the backend cannot turn them on now."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  try:
    backends.enable_determinism()
  except RuntimeError as e:
    raise HarnessError(f"--deterministic: {e}") from None


def peak_rss_bytes() -> int | None:
  """This process's peak resident memory so far (Linux reports kilobytes)."""
  try:
    import resource  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def run(experiment_name: str, tier_name: str, *, n_seeds: int | None = None, dtype: str | None = None,
        output_dir: str | None = None, mirrors: str | None = None, verbose: bool = True, progress: bool | None = None,
        force: bool = False, references_dir: str | None = None, deterministic: bool = False,
        plan: preflight.Plan | None = None, engine: "distributed.Engine | None" = None,
        strategy: str = "auto") -> tuple[str, dict]:
  """Runs a tier; returns (run_dir, record). Raises HarnessError on bad input, and when the pre-flight
  (harness/preflight.py: data, hardware, memory) stops the run, before any work and before the run directory
  exists. verbose: a line per phase (with its expected time) and the summary; progress: bars with time estimates
  inside long phases (default: as verbose). force: run although the hardware or memory check fails (recorded).
  deterministic: deterministic ops from here on, process-wide (harness.nets.backends.enable_determinism).
  plan: the pre-flight's plan when the caller made it already (the CLI checks every experiment's first).
  engine: where kernel matrices are computed (harness.distributed.Engine; default local, in this process).
  strategy: how Keras models are spread over this host's devices (backends.STRATEGIES; `distribution`)."""
  if deterministic:
    enable_determinism()
  with contextlib.ExitStack() as stack:
    devices = distribution(stack, strategy)  # before the run directory: no TPU is bad input
    return _run(experiment_name, tier_name, n_seeds=n_seeds, dtype=dtype, output_dir=output_dir, mirrors=mirrors,
                verbose=verbose, progress=progress, force=force, references_dir=references_dir, plan=plan,
                engine=dataclasses.replace(engine or distributed.Engine(), devices=tuple(devices)),
                strategy={"kind": strategy, "devices": [str(d) for d in devices]})


def distribution(stack: contextlib.ExitStack, strategy: str) -> list:
  """Enters the backend's data-parallel context for `strategy` (backends.distribution) on `stack`; returns the
  devices it spans. HarnessError for an unknown strategy or one this host cannot serve (tpu without a TPU)."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  if strategy not in backends.STRATEGIES:
    raise HarnessError(f"--strategy must be one of {', '.join(backends.STRATEGIES)}, got {strategy!r}")
  try:
    return list(stack.enter_context(backends.current().distribution(strategy)))
  except ValueError as e:
    raise HarnessError(f"--strategy={strategy}: {e}") from None


def _run(experiment_name: str, tier_name: str, *, n_seeds, dtype, output_dir, mirrors, verbose, progress, force,
         references_dir, plan, engine, strategy: dict) -> tuple[str, dict]:
  experiment = registry.get(experiment_name)
  tier = experiment.tier(tier_name)
  config, seeds, dtype = resolve(experiment, tier, n_seeds, dtype)
  plan = plan or preflight.make_plan(experiment, tier.name, n_seeds=n_seeds, dtype=dtype, mirrors=mirrors,
                                     references_dir=references_dir)
  forced = preflight.check(plan, force)
  run_dir = output_dir or default_run_dir(experiment.name, tier.name)
  run_id = os.path.basename(os.path.normpath(run_dir))
  records.prepare_run_dir(run_dir)

  expected = {name: t * plan.runtime.scale for name, t in plan.runtime.phases.items()}
  ctx = RunContext(seeds=seeds, dtype=dtype, mirrors=mirrors, verbose=verbose, families=experiment.families,
                   needs=plan.needs, expected_phase_s=expected, progress=verbose if progress is None else progress,
                   engine=engine)
  started_at = records.utc_now()
  start = time.perf_counter()
  env = environment.fingerprint(dtype)
  experiment.run(config, ctx)
  wall = time.perf_counter() - start
  outcomes = claims_lib.evaluate_all(experiment.claims, ctx.metrics, tier.name, dtype)
  record = {
      "schema": records.SCHEMA, "schema_version": records.SCHEMA_VERSION, "run_id": run_id,
      "experiment": experiment.name, "tier": tier.name, "status": "complete",
      "started_at": started_at, "finished_at": records.utc_now(),
      "config": records.to_jsonable(config), "seeds": list(seeds), "dtype": dtype,
      "metrics": {name: m.to_json() for name, m in sorted(ctx.metrics.items())},
      "curves": ctx.curves, "claims": outcomes, "phases": ctx.phases, "wall_time_s": wall,
      "expected_runtime_s": tier.expected_runtime_s, "datasets": ctx.datasets, "notes": ctx.notes,
      "papers": [dataclasses.asdict(p) for p in experiment.papers], "environment": env,
      "deterministic": bool(env.get("op_determinism")), "engine": engine.describe(), "strategy": strategy, "forced": bool(forced), "preflight": {**plan.as_record(forced), "peak_rss_bytes": peak_rss_bytes()},
  }
  records.write_json_atomic(records.results_path(run_dir), record)
  return run_dir, record
