"""The hardware comparison: runs of the same experiments and tiers from different machines or settings, compared
with each other and with their references, family by family.

Two runs agree on a metric when the metric's reference rule (or, without a reference entry, its family's rule)
accepts one run's value against the other's: a deterministic rule within its tolerance plus the rounding bound
at both runs' precisions, a statistical rule by its test between the two runs' per-seed values
(`references.check`, with the first run's values as the reference). Where runs disagree, the fingerprint fields
in which they differ (precision, TF32, Keras backend, library versions, device, determinism) are listed as the
candidate explanations.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping, Sequence

from harness import compare as compare_lib
from harness import precision, records, references, registry, stats
from harness.errors import HarnessError, ReferenceFileError
from harness.families import MissingMetric
from harness.metrics import Metric

# Environment rows of the report: (label, how to read it from a run record).
_VERSION_KEYS = ("python", "tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "numpy", "scipy")


def _device(record: Mapping[str, Any]) -> str:
  env = record["environment"]
  names = env.get("accelerator_names") or []
  if names:
    return f"{env.get('accelerator_count')}x {names[0]}"
  return f"{env.get('cpu_model')} ({env.get('cpu_affinity') or env.get('cpu_cores')} cores)"


def _driver(record: Mapping[str, Any]) -> str:
  env = record["environment"]
  smi = env.get("gpus_nvidia_smi") or []
  driver = smi[0].get("driver_version") if smi and isinstance(smi[0], dict) else None
  parts = [f"driver {driver}" if driver else None, f"CUDA {env['cuda_version']}" if env.get("cuda_version") else None,
           f"cuDNN {env['cudnn_version']}" if env.get("cudnn_version") else None]
  return ", ".join(p for p in parts if p) or "-"


ENVIRONMENT_FIELDS: tuple[tuple[str, Any], ...] = (
    ("device", _device),
    ("driver", _driver),
    ("host", lambda r: r["environment"].get("host")),
    ("memory GB", lambda r: f"{(r['environment'].get('memory_bytes') or 0) / 1e9:.0f}"),
    ("Keras backend", lambda r: r["environment"].get("keras_backend")),
    ("precision", lambda r: r.get("dtype")),
    ("TF32", lambda r: "on" if r["environment"].get("tf32_enabled") else "off"),
    ("XLA", lambda r: f"auto-jit {r['environment'].get('xla_jit_auto')}; flags {r['environment'].get('tf_xla_flags') or '-'}"),
    ("determinism", lambda r: "on" if r.get("deterministic") or r["environment"].get("op_determinism") else "off"),
    ("oneDNN", lambda r: r["environment"].get("onednn_opts")),
    ("matmul GFLOP/s", lambda r: ", ".join(f"{d} {g:.0f}" for d, g in (r["environment"].get("matmul_gflops") or {}).items()) or "-"),
    ("commit", lambda r: f"{str(r['environment'].get('git', {}).get('commit'))[:10]}"
                         f"{' (dirty)' if r['environment'].get('git', {}).get('dirty') else ''}"),
) + tuple((name, (lambda key: lambda r: r["environment"].get("versions", {}).get(key) or "-")(name))
          for name in _VERSION_KEYS)
# Fingerprint fields a disagreement may come from, in the order they are named.
EXPLAINING_FIELDS = ("precision", "TF32", "Keras backend", "device", "determinism", "XLA", "oneDNN") + _VERSION_KEYS


def environment_rows(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str], bool]]:
  """(field, value per run, whether the runs differ)."""
  rows = []
  for label, read in ENVIRONMENT_FIELDS:
    values = [str(read(r)) for r in runs]
    if label in _VERSION_KEYS and all(v == "-" for v in values):
      continue
    rows.append((label, values, len(set(values)) > 1))
  return rows


def differing_fields(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
  """The fingerprint fields (EXPLAINING_FIELDS) in which two runs differ, as 'field a -> b'."""
  fields = dict(ENVIRONMENT_FIELDS)
  out = []
  for label in EXPLAINING_FIELDS:
    va, vb = str(fields[label](a)), str(fields[label](b))
    if va != vb:
      out.append(f"{label} {va} -> {vb}")
  return out


@dataclasses.dataclass
class MetricRow:
  name: str
  values: list[Metric | None]               # per run
  reference: Mapping[str, Any] | None       # the reference entry (None: the family's rule, or not compared)
  rule: Mapping[str, Any] | None
  passes_reference: list[bool | None]       # per run (None: no reference entry)
  disagreements: list[tuple[int, int, str]]  # (run i, run j, detail) pairs that disagree

  @property
  def agree(self) -> bool | None:
    return None if self.rule is None or sum(v is not None for v in self.values) < 2 else not self.disagreements

  def relative_spread(self) -> float:
    means = [v.mean for v in self.values if v is not None and v.values and v.finite]
    if len(means) < 2:
      return 0.0
    scale = max(abs(m) for m in means) or 1.0
    return (max(means) - min(means)) / scale


@dataclasses.dataclass
class FamilyRows:
  template: str
  description: str
  rows: list[MetricRow]

  @property
  def compared(self) -> list[MetricRow]:
    return [r for r in self.rows if r.agree is not None]

  @property
  def disagreeing(self) -> list[MetricRow]:
    return [r for r in self.rows if r.agree is False]

  def reference_counts(self, run: int) -> tuple[int, int]:
    checked = [r.passes_reference[run] for r in self.rows if r.passes_reference[run] is not None]
    return sum(checked), len(checked)


@dataclasses.dataclass
class Group:
  """The runs of one experiment and tier."""
  experiment: str
  tier: str
  runs: list[Mapping[str, Any]]
  families: list[FamilyRows]
  claims: list[list[dict[str, Any]]]          # per run: claim outcomes as the current code evaluates them
  comparisons: list[compare_lib.Comparison | None]
  reference_error: str | None

  def explanations(self, row: MetricRow) -> list[str]:
    out = []
    for i, j, _ in row.disagreements:
      for text in differing_fields(self.runs[i], self.runs[j]):
        if text not in out:
          out.append(text)
    return out


def _check_pair(rule: Mapping[str, Any], a: Metric, dtype_a: str, b: Metric, dtype_b: str) -> tuple[bool, str]:
  """Does run b's metric agree with run a's under `rule` (a taken as the reference)?"""
  if rule["kind"] == "interval":
    inside = lambda m: rule["low"] <= m.mean <= rule["high"]  # noqa: E731
    return inside(a) == inside(b), "same side of the interval" if inside(a) == inside(b) else "one inside, one outside"
  if rule["kind"] == "statistical" and (len(a.values) + len(b.values) < 3):
    return True, "too few seeds for a test"
  entry = {"metric": "-", "value": a.mean, "values": list(a.values), "tolerance": dict(rule)}
  return references.check(entry, b, dtype_b, dtype_a)


def _family_of(experiment, name: str):
  if experiment is None:
    return None
  found = experiment.family_of(name)
  return None if found is None else found[0]


def _declared_rule(experiment, name: str, metrics: Mapping[str, Metric]) -> Mapping[str, Any] | None:
  """The family's rule for a metric without a reference entry, its rounding derived from the first run's metrics;
  without the rounding where that run cannot give it (a slope's points missing or not finite)."""
  if experiment is None:
    return None
  try:
    return experiment.rule_for(name, metrics)
  except (MissingMetric, ValueError, ArithmeticError):
    family, labels = experiment.family_of(name)
    return family.stated_rule(labels)


def build_group(runs: Sequence[Mapping[str, Any]], references_dir: str | None) -> Group:
  experiment_name, tier = runs[0]["experiment"], runs[0]["tier"]
  try:
    experiment = registry.get(experiment_name)
  except HarnessError:
    experiment = None
  blob, reference_error = None, None
  if references_dir is not None:
    try:
      blob = references.load(references_dir, experiment_name, tier)
    except ReferenceFileError as e:
      reference_error = str(e)
  entries = {e["metric"]: e for e in blob["entries"]} if blob else {}
  comparisons = [compare_lib.compare(r, references_dir) if blob else None for r in runs]
  verdicts = [{row.metric: row.passed for row in c.rows} if c else {} for c in comparisons]  # per run, per entry
  metrics = [records.metrics_of(r) for r in runs]
  names = sorted(set(entries) | {n for m in metrics for n in m})
  by_family: dict[str, FamilyRows] = {}
  for name in names:
    family = _family_of(experiment, name)
    key = family.template if family is not None else "(metrics of no declared family)"
    group = by_family.setdefault(key, FamilyRows(key, family.description if family is not None else "", []))
    entry = entries.get(name)
    rule = entry["tolerance"] if entry else _declared_rule(experiment, name, metrics[0])
    values = [m.get(name) for m in metrics]
    passes = [None if entry is None else verdicts[k][name] for k in range(len(runs))]
    disagreements = []
    if rule is not None:
      for i, j in itertools.combinations(range(len(runs)), 2):
        a, b = values[i], values[j]
        if a is None or b is None or not a.values or not b.values:
          continue
        ok, detail = _check_pair(rule, a, runs[i].get("dtype"), b, runs[j].get("dtype"))
        if not ok:
          disagreements.append((i, j, detail))
    group.rows.append(MetricRow(name, values, entry, rule, passes, disagreements))
  claims = [compare_lib.evaluate_claims(r) for r in runs]
  return Group(experiment_name, tier, list(runs), list(by_family.values()), claims, comparisons, reference_error)


def groups(runs: Sequence[Mapping[str, Any]], references_dir: str | None) -> list[Group]:
  """One Group per (experiment, tier), in the order the runs were given."""
  keys: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
  for run in runs:
    keys.setdefault((run["experiment"], run["tier"]), []).append(run)
  return [build_group(group_runs, references_dir) for group_runs in keys.values()]


def speedups(runs: Sequence[Mapping[str, Any]], baseline: Mapping[str, Any]) -> list[tuple[str, list[float | None], list[float | None]]]:
  """Per phase (and 'total'): each run's seconds and its speed-up over the baseline (baseline s / run s)."""
  phases = list(dict.fromkeys(p for r in [baseline, *runs] for p in (r.get("phases") or {})))
  rows = []
  for phase in phases + ["total"]:
    read = (lambda r: r.get("wall_time_s")) if phase == "total" else (lambda r: (r.get("phases") or {}).get(phase))
    seconds = [read(r) for r in runs]
    base = read(baseline)
    ups = [None if s is None or base is None or s <= 0 else base / s for s in seconds]
    rows.append((phase, seconds, ups))
  return rows


@dataclasses.dataclass(frozen=True)
class PrecisionRow:
  family: str
  metrics: int
  worst_relative: float        # largest |v32 - v64| / |v64|
  worst_metric: str
  of_rounding_bound: float | None  # largest |v32 - v64| / the rule's rounding bound at both precisions
  smallest_p: float | None         # statistical families: smallest Welch p between the two runs


def precision_rows(group: Group) -> tuple[tuple[int, int] | None, list[PrecisionRow]]:
  """How much float32 moves each family against float64: the first float32 and float64 runs of the group."""
  by_dtype: dict[str, int] = {}
  for k, run in enumerate(group.runs):
    by_dtype.setdefault(run.get("dtype"), k)
  if "float32" not in by_dtype or "float64" not in by_dtype:
    return None, []
  i32, i64 = by_dtype["float32"], by_dtype["float64"]
  out = []
  for family in group.families:
    worst, worst_name, of_bound, smallest_p, n = 0.0, "-", None, None, 0
    for row in family.rows:
      a, b = row.values[i64], row.values[i32]
      if a is None or b is None or not a.values or not b.values or not (a.finite and b.finite):
        continue
      n += 1
      rel = abs(b.mean - a.mean) / (abs(a.mean) or 1.0)
      if rel >= worst:
        worst, worst_name = rel, row.name
      rounding = (row.rule or {}).get("rounding")
      if rounding:
        bound = precision.rounding_bound(rounding, a.mean, "float32", "float64")
        if bound > 0:
          of_bound = max(of_bound or 0.0, abs(b.mean - a.mean) / bound)
      if (row.rule or {}).get("kind") == "statistical" and len(a.values) > 1 and len(b.values) > 1:
        p = stats.welch_t_test(b.values, a.values).p_value
        smallest_p = p if smallest_p is None else min(smallest_p, p)
    if n:
      out.append(PrecisionRow(family.template, n, worst, worst_name, of_bound, smallest_p))
  return (i32, i64), out


def finite_or_dash(value: float | None, spec: str = ".3g") -> str:
  return "-" if value is None or not math.isfinite(value) else format(value, spec)
