"""Pre-flight: what a tier's run needs, checked against this machine before its first phase (`harness plan`).

An experiment states its needs once, as a function of its config, `Experiment.needs(config, seeds) -> Needs`: its
phases, every (dataset, split) its phases read and how many official examples (0..n-1) of it, and its peak
memory by part. Each tier states the hardware it is sized for, `@registry.tier(..., hardware=Hardware(...))`.
`check` compares them with this machine before the run directory is made:
  - data: each (dataset, split) against its mirror (shards verified, examples held) or TFDS (prepared in the data
    dir, or downloadable now): a shortfall stops the run (HarnessError, exit 2) naming the dataset, the size asked
    and the size held; `--force` cannot override it;
  - hardware: accelerator kind and count and host memory against the environment fingerprint;
  - memory: the peak estimate against this machine's memory.
A hardware or memory problem stops the run with the tier's expected runtime on this machine, unless forced; forced
problems go into the run record. While the run goes, RunContext refuses a dataset read or a phase that the needs do
not declare, so the declaration cannot drift from what the run does.

Runtimes: the latest blessed run of the tier (its wall time and phases, reference_results/) or else the tier's
`expected_runtime_s`, scaled to this machine by the ratio of matmul throughputs (harness/calibration.py) between
the machine it refers to (the blessed run's fingerprint, else the tier's `Hardware.gflops`) and this one.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Callable, Mapping, Sequence

from harness.errors import HarnessError

GB = 1e9
VERIFY_BYTES = 1 * GB   # a mirror split up to this size is sha256-verified by the pre-flight itself (seconds)
# RSS of a process that has imported TensorFlow and Keras and compiled a first XLA program (measured with
# /usr/bin/time on the 2-core CI machine: 0.80 GB after `import tensorflow, keras`; docs/performance.md).
PROCESS_BASE_BYTES = 1.0 * GB
# the 2-core CI machine's matmul throughput (harness/calibration.py after nets.configure_xla_cpu, as `run` measures
# it; the median of 7 processes, their spread and the host in docs/performance.md): the unit of the CPU tiers' runtimes
CI_CPU_GFLOPS = {"float32": 266.0, "float64": 62.0}
CI_CPU_HOST_GFLOPS = {"float32": 301.0, "float64": 146.0}   # numpy's (calibration.host_matmul_gflops), as above
BACKEND, HOST = "backend", "host"   # where an experiment's math runs: Keras on the backend's device, or numpy


@dataclasses.dataclass(frozen=True)
class Hardware:
  """The machine class a tier is sized for.

  accelerators: how many accelerators of one of `accelerator_kinds` it needs (0: a CPU host).
  host_memory_gb: the host memory it needs (0: no minimum beyond its memory estimate).
  gflops: matmul throughput per dtype (harness/calibration.py) of the machine its expected runtime refers to, on
  the backend's device; host_gflops: the same for numpy on its host (None: as gflops), for numpy experiments;
  gflops_basis: where these figures come from (measured, or the assumption behind an estimate).
  """
  description: str
  gflops: Mapping[str, float]
  gflops_basis: str
  accelerators: int = 0
  accelerator_kinds: tuple[str, ...] = ("GPU", "TPU")
  host_memory_gb: float = 0.0
  host_gflops: Mapping[str, float] | None = None

  def __post_init__(self):
    for figures in (self.gflops, self.host_gflops or self.gflops):
      if set(figures) != {"float32", "float64"} or min(figures.values()) <= 0:
        raise ValueError(f"{self.description}: gflops needs a positive figure for float32 and float64")
    if self.accelerators < 0 or self.host_memory_gb < 0:
      raise ValueError(f"{self.description}: negative requirement")

  def __str__(self) -> str:
    return self.description

  def reference_gflops(self, compute: str, dtype: str) -> float:
    return ((self.host_gflops or self.gflops) if compute == HOST else self.gflops)[dtype]


CI_CPU = Hardware("2 CPU cores", gflops=CI_CPU_GFLOPS, host_gflops=CI_CPU_HOST_GFLOPS,
                  gflops_basis="measured on the 2-core CI machine (docs/performance.md)")


def accelerator_host(description: str, *, gflops: Mapping[str, float], basis: str, accelerators: int = 1,
                     kinds: tuple[str, ...] = ("GPU", "TPU"), host_memory_gb: float = 0.0,
                     host_gflops: Mapping[str, float] | None = None) -> Hardware:
  return Hardware(description, gflops=gflops, gflops_basis=basis, accelerators=accelerators,
                  accelerator_kinds=kinds, host_memory_gb=host_memory_gb, host_gflops=host_gflops)


@dataclasses.dataclass(frozen=True)
class DataNeed:
  """A phase reads official examples 0..examples-1 of a dataset's split (`streamed`: batch by batch, once)."""
  dataset_id: str
  split: str
  examples: int
  phase: str
  streamed: bool = False


@dataclasses.dataclass(frozen=True)
class Needs:
  """What one tier's run needs.

  datasets: what each phase reads (a (dataset, split) may appear for several phases; `merged_data` is one need per
  pair). memory: (part, bytes) pairs in host memory at the same time at the peak (the process's own
  PROCESS_BASE_BYTES is added by `peak_memory_bytes`); device_memory: parts that live on the accelerator where
  there is one (on a machine without one they are host memory too). compute: where the math runs, BACKEND (Keras:
  the accelerator where there is one) or HOST (numpy): the throughput the runtime is scaled by.
  """
  phases: tuple[str, ...]
  datasets: tuple[DataNeed, ...] = ()
  memory: tuple[tuple[str, float], ...] = ()
  device_memory: tuple[tuple[str, float], ...] = ()
  compute: str = BACKEND

  def __post_init__(self):
    if self.compute not in (BACKEND, HOST):
      raise ValueError(f"compute must be {BACKEND!r} or {HOST!r}, got {self.compute!r}")
    undeclared = sorted({d.phase for d in self.datasets} - set(self.phases))
    if undeclared:
      raise ValueError(f"data needs name phases {undeclared} that are not among {self.phases}")

  @property
  def merged_data(self) -> tuple[DataNeed, ...]:
    return merge_data(self.datasets)

  def host_parts(self, accelerator: bool) -> tuple[tuple[str, float], ...]:
    return self.memory if accelerator else self.memory + self.device_memory

  def peak_memory_bytes(self, accelerator: bool = False) -> float:
    """Host memory at the peak (with the device parts where there is no accelerator)."""
    return PROCESS_BASE_BYTES + sum(b for _, b in self.host_parts(accelerator))

  @property
  def device_memory_bytes(self) -> float:
    return sum(b for _, b in self.device_memory)

  def data_limit(self, dataset_id: str, split: str, phase: str | None = None) -> int | None:
    """The most official examples of (dataset, split) `phase` may read (None: not declared for it)."""
    sizes = [d.examples for d in self.datasets
             if (d.dataset_id, d.split) == (dataset_id, split) and phase in (None, d.phase)]
    return max(sizes) if sizes else None


def merge_data(needs: Sequence[DataNeed]) -> tuple[DataNeed, ...]:
  """One need per (dataset, split): the largest, the phases that read it joined."""
  merged: dict[tuple[str, str], DataNeed] = {}
  for need in needs:
    key = (need.dataset_id, need.split)
    if key in merged:
      old = merged[key]
      phases = old.phase if need.phase in old.phase.split("+") else f"{old.phase}+{need.phase}"
      need = DataNeed(need.dataset_id, need.split, max(old.examples, need.examples), phases,
                      old.streamed or need.streamed)
    merged[key] = need
  return tuple(merged.values())


def array_bytes(*shape: int, dtype: str = "float64") -> float:
  return float(math.prod(shape)) * (8 if dtype == "float64" else 4)


# -- this machine ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Machine:
  cpu_cores: int
  memory_bytes: float | None
  accelerator_kind: str        # "GPU", "TPU" or "none"
  accelerator_count: int
  accelerator_names: tuple[str, ...]
  gflops: float                # matmul GFLOP/s in the run's dtype, where the experiment's math runs (`compute`)
  dtype: str
  accelerator_memory_bytes: float | None = None
  compute: str = BACKEND

  def describe(self) -> str:
    memory = "unknown memory" if self.memory_bytes is None else f"{self.memory_bytes / GB:.0f} GB"
    name = self.accelerator_names[0] if self.accelerator_names else self.accelerator_kind
    accel = f"{self.accelerator_count}x {name}" if self.accelerator_count else "no accelerator"
    return (f"{self.cpu_cores} CPU cores, {memory}, {accel}, {self.compute} matmul {self.gflops:.0f} GFLOP/s "
            f"{self.dtype}")


def this_machine(dtype: str, compute: str = BACKEND) -> Machine:
  """This machine as the fingerprint sees it, with its matmul throughput in `dtype` where `compute` runs."""
  from harness import calibration, environment
  env = environment.hardware()
  gflops = calibration.host_matmul_gflops(dtype) if compute == HOST else calibration.matmul_gflops(dtype)
  return Machine(cpu_cores=env["cpu_cores"] or 1, memory_bytes=env["memory_bytes"],
                 accelerator_kind=env.get("accelerator_kind", "none"),
                 accelerator_count=int(env.get("accelerator_count", 0)),
                 accelerator_names=tuple(env.get("accelerator_names", ())), gflops=gflops, dtype=dtype,
                 accelerator_memory_bytes=env.get("accelerator_memory_bytes"), compute=compute)


# -- data ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DataStatus:
  need: DataNeed
  source: str
  held: int | None      # examples 0..held-1 available (None: unknown)
  problem: str | None   # why the run cannot read it (None: it can)


def data_status(need: DataNeed, mirrors: str | Mapping[str, str] | None) -> DataStatus:
  """Whether this machine can serve the need: its mirror or TFDS (prepared, or downloadable now)."""
  from harness.data import DataError, catalog, mirrors as mirrors_lib
  label = f"{need.dataset_id} {need.split}"
  try:
    spec = catalog.get(need.dataset_id)
    catalog.check_split(spec, need.split)
    official = spec.split_sizes[need.split]
    if need.examples > official:
      return DataStatus(need, "-", official, f"{label}: the tier needs its first {need.examples} examples, the "
                                             f"split has {official}")
    table = mirrors_lib.resolve_mirrors(mirrors)
    if need.dataset_id in table:
      mirror = mirrors_lib.Mirror(need.dataset_id, table[need.dataset_id])
      held, source = _mirror_held(mirror, need.split)
      short = None if held >= need.examples else (
          f"{label}: the tier needs its first {need.examples} examples, the mirror {mirror.folder} holds {held}")
      return DataStatus(need, source, held, short)
    if spec.tfds_name is None:
      return DataStatus(need, "none", None, f"{label}: served only by a mirror; set {mirrors_lib.ENV_VAR} (or "
                                            f"--mirrors) to '{need.dataset_id}=<folder of .npz shards>'")
    return _tfds_status(need, spec)
  except DataError as e:
    return DataStatus(need, "mirror", None, str(e))


def _mirror_held(mirror, split: str) -> tuple[int, str]:
  """Examples the mirror holds for the split: its shards verified against the README's sha256 when they total at
  most VERIFY_BYTES (seconds), else counted from their .npy headers (the checksums are verified when read)."""
  names = mirror.shard_names(split)
  size = sum(os.path.getsize(os.path.join(mirror.folder, n)) for n in names)
  if size <= VERIFY_BYTES:
    return mirror.capacity(split), mirror.source
  held = sum(mirror.member_headers(os.path.join(mirror.folder, n))[1].rows for n in names)
  return held, f"{mirror.source} ({size / GB:.0f} GB: checksums verified when read)"


def _tfds_status(need: DataNeed, spec) -> DataStatus:
  label = f"{need.dataset_id} {need.split}"
  hint = f"or set HARNESS_MIRRORS (or --mirrors) to '{need.dataset_id}=<folder of .npz shards>'"
  try:
    from harness.data import tfds_source
    source = tfds_source.TfdsSource(spec)
  except ImportError as e:
    return DataStatus(need, "tfds", None, f"{label}: TFDS needs tensorflow-datasets and TensorFlow ({e.name} is not "
                                          f"installed); install them {hint}")
  except Exception as e:  # pylint: disable=broad-except  (TFDS raises many kinds: a missing builder, a bad data dir)
    return DataStatus(need, "tfds", None, f"{label}: TFDS cannot open it ({type(e).__name__}: "
                                          f"{' '.join(str(e).split())[:300]}); {hint}")
  where = source.builder.data_dir
  with tfds_source.quiet_tfds_logs():
    prepared = source.builder.is_prepared()
    held = int(source.builder.info.splits[need.split].num_examples) if prepared else 0
  if prepared:
    short = None if held >= need.examples else (
        f"{label}: the tier needs its first {need.examples} examples, TFDS in {where} holds {held}")
    return DataStatus(need, source.source, held, short)
  urls = list(source.builder.url_infos or {})
  official = spec.split_sizes[need.split]
  if urls:
    offline = tfds_source.unreachable_hosts(urls)
    if offline:
      return DataStatus(need, source.source, 0, f"{label}: not in the TFDS data dir {where} and "
                                                f"{', '.join(offline)} is unreachable (offline?); {hint}")
    return DataStatus(need, f"{source.source} (to download)", official, None)
  manual = os.path.join(os.path.dirname(os.path.dirname(where)), "downloads", "manual")
  if os.path.isdir(manual) and os.listdir(manual):
    return DataStatus(need, f"{source.source} (to prepare from {manual})", official, None)
  return DataStatus(need, source.source, 0, f"{label}: not prepared in the TFDS data dir {where} and no manual "
                                            f"data in {manual}; {hint}")


# -- runtime ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Runtime:
  """The tier's runtime where it was measured or estimated (`basis`), and on this machine (x `scale`)."""
  seconds: float
  phases: Mapping[str, float]
  basis: str
  scale: float

  @property
  def here_s(self) -> float:
    return self.seconds * self.scale


def latest_blessing(references_dir: str, experiment: str, tier: str) -> Mapping[str, Any] | None:
  """The most recent blessing of the tier's reference file that knows its wall time (None: none)."""
  from harness import references
  path = references.reference_path(references_dir, experiment, tier)
  if not os.path.exists(path):
    return None
  try:
    blob = references.load(references_dir, experiment, tier)
  except HarnessError:
    return None  # a malformed reference file is `compare`'s error, not the pre-flight's
  timed = [b for b in blob["blessings"].values() if b.get("wall_time_s") is not None]
  return max(timed, key=lambda b: b["blessed_at"]) if timed else None


def runtime(tier, dtype: str, machine: Machine, blessing: Mapping[str, Any] | None, compute: str = BACKEND,
            seed_ratio: float = 1.0) -> Runtime:
  """The blessed run's wall time and phases (on its machine), else the tier's stated runtime, and the factor to
  this machine: the ratio of matmul throughputs in `dtype` where the math runs (`compute`), times `seed_ratio` (the
  seeds asked over the tier's own: every phase is taken to scale with them, an upper bound)."""
  key = "host_matmul_gflops" if compute == HOST else "matmul_gflops"
  seeds = f", x{seed_ratio:.3g} for the seeds" if seed_ratio != 1.0 else ""
  if blessing is not None:
    measured = (blessing.get("fingerprint") or {}).get(key) or {}
    reference = measured.get(dtype) or tier.hardware.reference_gflops(compute, dtype)
    where = ("its machine" if measured.get(dtype)
             else f"{tier.hardware} ({tier.hardware.gflops_basis})")
    basis = (f"measured {blessing['wall_time_s']:.0f} s (blessed run {blessing['run_id']}, commit "
             f"{str(blessing.get('commit'))[:7]}) on {where}, {compute} matmul {reference:.0f} GFLOP/s{seeds}")
    return Runtime(float(blessing["wall_time_s"]), dict(blessing.get("phases") or {}), basis,
                   seed_ratio * reference / machine.gflops)
  reference = tier.hardware.reference_gflops(compute, dtype)
  basis = (f"stated {tier.expected_runtime_s:.0f} s for {tier.hardware} (no blessed run with its time; {compute} "
           f"matmul {reference:.0f} GFLOP/s, {tier.hardware.gflops_basis}){seeds}")
  return Runtime(tier.expected_runtime_s, {}, basis, seed_ratio * reference / machine.gflops)


def duration(seconds: float) -> str:
  if seconds < 120:
    return f"{seconds:.0f} s"
  if seconds < 7200:
    return f"{seconds / 60:.0f} min"
  if seconds < 3 * 86400:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 86400:.0f} days"


# -- the plan ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Problem:
  check: str      # "data", "hardware" or "memory"
  message: str
  forcible: bool  # --force runs anyway (hardware, memory); data shortfalls never


@dataclasses.dataclass(frozen=True)
class Plan:
  experiment: str
  tier: str
  hardware: Hardware
  dtype: str
  seeds: tuple[int, ...]
  needs: Needs
  machine: Machine
  data: tuple[DataStatus, ...]
  runtime: Runtime
  problems: tuple[Problem, ...]

  def as_record(self, forced: Sequence[Problem]) -> dict[str, Any]:
    """The run record's `preflight`: what was checked, the estimates, and what --force overrode."""
    return {
        "hardware": self.hardware.description, "machine": self.machine.describe(),
        "datasets": [{"dataset": s.need.dataset_id, "split": s.need.split, "examples": s.need.examples,
                      "source": s.source, "held": s.held} for s in self.data],
        "memory_estimate_bytes": self.needs.peak_memory_bytes(self.machine.accelerator_count > 0),
        "memory_parts_bytes": dict(self.needs.host_parts(self.machine.accelerator_count > 0)),
        "device_memory_estimate_bytes": self.needs.device_memory_bytes if self.machine.accelerator_count else None,
        "runtime_estimate_s": self.runtime.here_s, "runtime_basis": self.runtime.basis,
        "forced": [f"{p.check}: {p.message}" for p in forced],
    }


def hardware_problems(hardware: Hardware, machine: Machine, needs: Needs) -> list[Problem]:
  problems = []
  if hardware.accelerators and (machine.accelerator_count < hardware.accelerators
                                or machine.accelerator_kind not in hardware.accelerator_kinds):
    found = (f"{machine.accelerator_count} {machine.accelerator_kind}" if machine.accelerator_count
             else "no accelerator")
    problems.append(Problem("hardware", f"needs {hardware.accelerators} {'/'.join(hardware.accelerator_kinds)}, "
                                        f"this machine has {found}", True))
  memory = machine.memory_bytes
  if memory is not None and hardware.host_memory_gb and memory < hardware.host_memory_gb * GB * 0.95:
    problems.append(Problem("hardware", f"needs {hardware.host_memory_gb:.0f} GB of host memory, this machine has "
                                        f"{memory / GB:.0f} GB", True))
  accelerator = machine.accelerator_count > 0
  peak = needs.peak_memory_bytes(accelerator)
  if memory is not None and peak > memory:
    problems.append(Problem("memory", f"peak memory estimated at {peak / GB:.1f} GB "
                                      f"({_largest(needs.host_parts(accelerator))}), this machine has "
                                      f"{memory / GB:.0f} GB", True))
  device = machine.accelerator_memory_bytes
  if accelerator and device is not None and needs.device_memory_bytes > device:
    problems.append(Problem("memory", f"accelerator memory estimated at {needs.device_memory_bytes / GB:.1f} GB "
                                      f"({_largest(needs.device_memory)}), the accelerator has {device / GB:.0f} GB",
                            True))
  return problems


def _largest(parts: Sequence[tuple[str, float]], count: int = 3) -> str:
  return ", ".join(f"{name} {b / GB:.1f} GB" for name, b in sorted(parts, key=lambda p: -p[1])[:count])


def make_plan(experiment, tier_name: str, *, n_seeds: int | None = None, dtype: str | None = None,
              mirrors: str | Mapping[str, str] | None = None, references_dir: str | None = None,
              machine: Machine | None = None) -> Plan:
  """Everything the pre-flight knows about running `experiment`'s tier here, without running it."""
  from harness import references, runner
  tier = experiment.tier(tier_name)
  config, seeds, dtype = runner.resolve(experiment, tier, n_seeds, dtype)
  _, tier_seeds, _ = runner.resolve(experiment, tier, None, dtype)
  needs = experiment.needs(config, seeds)
  machine = machine or this_machine(dtype, needs.compute)
  statuses = tuple(data_status(need, mirrors) for need in needs.merged_data)
  problems = [Problem("data", s.problem, False) for s in statuses if s.problem]
  problems += hardware_problems(tier.hardware, machine, needs)
  blessing = latest_blessing(references_dir or references.DEFAULT_DIR, experiment.name, tier.name)
  estimate = runtime(tier, dtype, machine, blessing, needs.compute, len(seeds) / len(tier_seeds))
  return Plan(experiment.name, tier.name, tier.hardware, dtype, seeds, needs, machine, statuses, estimate,
              tuple(problems))


def check(plan: Plan, force: bool = False) -> list[Problem]:
  """Raises HarnessError (one line) for the first problem that stops the run; returns the problems `force`
  overrode (to be recorded)."""
  where = f"{plan.experiment} tier {plan.tier}"
  for problem in plan.problems:
    if not problem.forcible:
      raise HarnessError(f"{where}: {problem.message}")
  forcible = [p for p in plan.problems if p.forcible]
  if forcible and not force:
    reasons = "; ".join(p.message for p in forcible)
    raise HarnessError(f"{where} is sized for {plan.hardware}: {reasons}; expected runtime here "
                       f"{duration(plan.runtime.here_s)} (x{plan.runtime.scale:.3g} of "
                       f"{duration(plan.runtime.seconds)}); "
                       f"--force runs it anyway")
  return forcible


def format_plan(plan: Plan) -> str:
  """The plan as a table (harness plan)."""
  rt = plan.runtime
  lines = [f"{plan.experiment} / {plan.tier}: sized for {plan.hardware}; {plan.dtype}, {len(plan.seeds)} "
           f"seed{'s' if len(plan.seeds) > 1 else ''}",
           f"  this machine: {plan.machine.describe()}",
           f"  runtime: about {duration(rt.here_s)} here; {rt.basis}; x{rt.scale:.3g} for this machine"]
  width = max([len(p) for p in plan.needs.phases] + [5])
  lines.append(f"  {'phase':<{width}}  {'expected here':>13}  reads")
  for phase in plan.needs.phases:
    measured = rt.phases.get(phase)
    reads = ", ".join(f"{d.dataset_id} {d.split}[:{d.examples}]" for d in plan.needs.datasets if d.phase == phase)
    lines.append(f"  {phase:<{width}}  {duration(measured * rt.scale) if measured is not None else '-':>13}  {reads}")
  for status in plan.data:
    need = status.need
    held = "?" if status.held is None else str(status.held) if status.held else "nothing"
    verdict = "SHORT" if status.problem else "ok"
    lines.append(f"  data {need.dataset_id} {need.split}: needs {need.examples}"
                 f"{' (streamed)' if need.streamed else ''}, {status.source} holds {held}  {verdict}")
  memory, accelerator = plan.machine.memory_bytes, plan.machine.accelerator_count > 0
  parts = ", ".join(f"{name} {b / GB:.2g} GB" for name, b in sorted(plan.needs.host_parts(accelerator),
                                                                    key=lambda p: -p[1]) if b >= 0.01 * GB)
  lines.append(f"  memory: peak about {plan.needs.peak_memory_bytes(accelerator) / GB:.2g} GB (process "
               f"{PROCESS_BASE_BYTES / GB:.2g} GB{', ' + parts if parts else ''}); this machine "
               f"{'?' if memory is None else f'{memory / GB:.0f} GB'}")
  if accelerator and plan.needs.device_memory:
    device = plan.machine.accelerator_memory_bytes
    lines.append(f"  accelerator memory: about {plan.needs.device_memory_bytes / GB:.2g} GB "
                 f"({_largest(plan.needs.device_memory)}); the accelerator "
                 f"{'?' if device is None else f'{device / GB:.0f} GB'}")
  if plan.problems:
    lines.append("  would stop the run:")
    lines += [f"    {p.check}: {p.message}{' (--force overrides)' if p.forcible else ''}" for p in plan.problems]
  else:
    lines.append("  would stop the run: nothing")
  return "\n".join(lines)


NeedsFn = Callable[[Any, Sequence[int]], Needs]
