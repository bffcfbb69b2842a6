"""The run record: `results.json` in a versioned schema, written atomically.

Schema (version 1), top-level keys:
  schema, schema_version, run_id, experiment, tier, status ("complete"), started_at, finished_at,
  config (the tier's config as JSON), seeds, dtype, metrics {name: {values, seeds, unit, mean, std, n}},
  curves {name: {x_label, y_label, series: [{seed, x, y}]}}, claims [{name, statement, check, passed,
  detail, asserted, metrics, error?}] (asserted: False for a claim outside the tiers sized to resolve it;
  metrics: the names its check read; error: set when the check raised; older records lack these keys),
  phases {name: wall seconds}, wall_time_s, datasets [{dataset_id, source, checksum, ...}], notes {...},
  environment (harness.environment.fingerprint, with matmul_gflops), deterministic (--deterministic: op
  determinism was on), engine {kind, pipeline_options, work_dir} (where kernels were computed: --engine),
  strategy {kind, devices} (--strategy: the devices Keras models were data-parallel over, or kernel tiles spread over),
  forced (--force overrode the pre-flight),
  preflight {hardware, machine, datasets, memory_estimate_bytes, memory_parts_bytes, runtime_estimate_s,
  runtime_basis, forced, peak_rss_bytes} (harness/preflight.py; older records lack deterministic, forced and preflight).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import uuid
from typing import Any, Mapping

from harness import atomic
from harness.errors import RunDirError
from harness.metrics import Metric, metrics_from_json

SCHEMA = "harness.results"
SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
REQUIRED_KEYS = ("schema", "schema_version", "run_id", "experiment", "tier", "status", "config", "seeds",
                 "dtype", "metrics", "claims", "phases", "environment")


def utc_now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_run_id(experiment: str, tier: str) -> str:
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
  return f"{experiment}-{tier}-{stamp}-{uuid.uuid4().hex[:6]}"


def to_jsonable(value: Any) -> Any:
  """Dataclasses, tuples and numpy scalars to plain JSON; NaN/inf become strings."""
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, Mapping):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
    return to_jsonable(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return repr(value)
  return value


def write_json_atomic(path: str, blob: Any) -> None:
  """`blob` as indented JSON (NaN/inf as strings, `to_jsonable`), written atomically (`harness.atomic`)."""
  with atomic.atomic_open(path, "w") as f:
    json.dump(to_jsonable(blob), f, indent=1, sort_keys=False, allow_nan=False)
    f.write("\n")


def prepare_run_dir(output_dir: str) -> str:
  """Creates a fresh run directory; refuses one that already holds anything."""
  if os.path.exists(output_dir):
    if not os.path.isdir(output_dir):
      raise RunDirError(f"output directory {output_dir} exists and is not a directory")
    if os.listdir(output_dir):
      raise RunDirError(f"output directory {output_dir} already holds a run; choose a new --output_dir")
  os.makedirs(output_dir, exist_ok=True)
  return output_dir


def results_path(run_dir: str) -> str:
  return os.path.join(run_dir, RESULTS_FILE)


def load(run_dir: str) -> dict[str, Any]:
  """Reads and validates a run's results.json (RunDirError with one line if anything is off)."""
  path = results_path(run_dir)
  if not os.path.isdir(run_dir):
    raise RunDirError(f"no run directory {run_dir}")
  if not os.path.exists(path):
    raise RunDirError(f"{path} not found: the run did not finish (or this is not a run directory)")
  try:
    with open(path) as f:
      record = json.load(f)
  except json.JSONDecodeError as e:
    raise RunDirError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
  validate(record, path)
  return record


def validate(record: Any, where: str) -> None:
  if not isinstance(record, dict):
    raise RunDirError(f"{where}: top level must be an object")
  missing = [k for k in REQUIRED_KEYS if k not in record]
  if missing:
    raise RunDirError(f"{where}: missing field(s) {', '.join(missing)}")
  if record["schema"] != SCHEMA:
    raise RunDirError(f"{where}: schema is {record['schema']!r}, expected {SCHEMA!r}")
  if record["schema_version"] != SCHEMA_VERSION:
    raise RunDirError(f"{where}: schema_version {record['schema_version']} is not supported (expected {SCHEMA_VERSION})")
  if record["status"] != "complete":
    raise RunDirError(f"{where}: status is {record['status']!r}, not complete")
  if not isinstance(record["metrics"], dict):
    raise RunDirError(f"{where}: metrics must be an object")
  for name, entry in record["metrics"].items():
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list) or not isinstance(entry.get("seeds"), list):
      raise RunDirError(f"{where}: metrics.{name} needs lists 'values' and 'seeds'")
    if len(entry["values"]) != len(entry["seeds"]):
      raise RunDirError(f"{where}: metrics.{name}: values and seeds differ in length")
    for v in entry["values"]:
      try:
        float(v)
      except (TypeError, ValueError):
        raise RunDirError(f"{where}: metrics.{name}.values holds a non-number {v!r}") from None


def metrics_of(record: Mapping[str, Any]) -> dict[str, Metric]:
  return metrics_from_json(record["metrics"])
