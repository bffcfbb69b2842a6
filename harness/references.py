"""Stored reference numbers: `reference_results/<experiment>/<tier>.json`.

File format (schema_version 1):
  {"schema": "harness.references", "schema_version": 1, "experiment": "...", "tier": "...",
   "entries": [{"metric": name, "value": number, "values": [raw per-seed numbers, statistical rules only],
                "tolerance": rule, "provenance": provenance}, ...]}

Tolerance rules (`tolerance.kind`):
  absolute     |measured - value| <= atol
  relative     |measured - value| <= rtol * |value|
  interval     low <= measured <= high ("value" optional)
  statistical  the raw per-seed values of the run against the entry's raw `values`:
               test "welch_t": Welch's t-test (one measured seed: prediction-interval t), fails when
                 p < alpha in the direction `alternative` ("two-sided", "less": measured lower,
                 "greater": measured higher);
               test "k_pooled_se": fails when |mean difference| > k * sqrt(s_m^2/n_m + s_r^2/n_r).
  In every rule a NaN or infinite measurement fails.

Provenance (`provenance.kind`):
  theory    {"derivation": how the number follows, "citation": paper/equation}
  paper     {"arxiv": id, "location": table or figure, "checked_against_text": bool, "quote": optional}
  measured  {"run_id", "commit", "dirty", "fingerprint", "seeds", "values", "blessed_at", "reason"}
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Mapping, Sequence

from harness import stats
from harness.errors import ReferenceFileError
from harness.metrics import Metric, format_value

SCHEMA = "harness.references"
SCHEMA_VERSION = 1
TOLERANCE_KINDS = ("absolute", "relative", "interval", "statistical")
STAT_TESTS = ("welch_t", "k_pooled_se")
PROVENANCE_KINDS = ("theory", "paper", "measured")
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference_results")


def reference_path(references_dir: str, experiment: str, tier: str) -> str:
  return os.path.join(references_dir, experiment, f"{tier}.json")


# -- validation ----------------------------------------------------------------------------------
class _Validator:
  def __init__(self, path: str):
    self.path = path

  def fail(self, field: str, message: str):
    raise ReferenceFileError(f"{self.path}: {field}: {message}")

  def number(self, blob: Mapping, key: str, field: str, minimum: float | None = None) -> float:
    value = blob.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
      self.fail(f"{field}.{key}", f"must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
      self.fail(f"{field}.{key}", f"must be >= {minimum}, got {value!r}")
    return float(value)

  def string(self, blob: Mapping, key: str, field: str) -> str:
    value = blob.get(key)
    if not isinstance(value, str) or not value.strip():
      self.fail(f"{field}.{key}", "must be a non-empty string")
    return value

  def numbers(self, blob: Mapping, key: str, field: str, min_len: int = 1) -> list[float]:
    values = blob.get(key)
    if not isinstance(values, list) or len(values) < min_len:
      self.fail(f"{field}.{key}", f"must be a list of at least {min_len} numbers")
    for i, v in enumerate(values):
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        self.fail(f"{field}.{key}[{i}]", f"must be a finite number, got {v!r}")
    return [float(v) for v in values]


def validate_tolerance(rule: Any, field: str, v: _Validator) -> None:
  if not isinstance(rule, dict):
    v.fail(field, "must be an object")
  kind = rule.get("kind")
  if kind not in TOLERANCE_KINDS:
    v.fail(f"{field}.kind", f"must be one of {', '.join(TOLERANCE_KINDS)}, got {kind!r}")
  if kind == "absolute":
    v.number(rule, "atol", field, minimum=0)
  elif kind == "relative":
    v.number(rule, "rtol", field, minimum=0)
  elif kind == "interval":
    low, high = v.number(rule, "low", field), v.number(rule, "high", field)
    if low > high:
      v.fail(field, f"low {low} > high {high}")
  else:
    test = rule.get("test")
    if test not in STAT_TESTS:
      v.fail(f"{field}.test", f"must be one of {', '.join(STAT_TESTS)}, got {test!r}")
    if test == "welch_t":
      alpha = v.number(rule, "alpha", field)
      if not 0 < alpha < 1:
        v.fail(f"{field}.alpha", f"must be in (0, 1), got {alpha}")
      if rule.get("alternative") not in stats.ALTERNATIVES:
        v.fail(f"{field}.alternative", f"must be one of {', '.join(stats.ALTERNATIVES)}")
    else:
      v.number(rule, "k", field, minimum=0)


def validate_provenance(prov: Any, field: str, v: _Validator) -> None:
  if not isinstance(prov, dict):
    v.fail(field, "must be an object")
  kind = prov.get("kind")
  if kind not in PROVENANCE_KINDS:
    v.fail(f"{field}.kind", f"must be one of {', '.join(PROVENANCE_KINDS)}, got {kind!r}")
  if kind == "theory":
    v.string(prov, "derivation", field)
    v.string(prov, "citation", field)
  elif kind == "paper":
    arxiv = v.string(prov, "arxiv", field)
    if not re.fullmatch(r"\d{4}\.\d{4,5}", arxiv):
      v.fail(f"{field}.arxiv", f"not an arXiv id: {arxiv!r}")
    v.string(prov, "location", field)
    if not isinstance(prov.get("checked_against_text"), bool):
      v.fail(f"{field}.checked_against_text", "must be true or false")
  else:
    for key in ("run_id", "blessed_at", "reason"):
      v.string(prov, key, field)
    if "commit" not in prov or "dirty" not in prov:
      v.fail(field, "measured provenance needs 'commit' and 'dirty'")
    if not isinstance(prov.get("fingerprint"), dict):
      v.fail(f"{field}.fingerprint", "must be an object (the run's environment)")
    if not isinstance(prov.get("seeds"), list):
      v.fail(f"{field}.seeds", "must be a list")
    v.numbers(prov, "values", field)


def validate(blob: Any, path: str, experiment: str | None = None, tier: str | None = None) -> None:
  v = _Validator(path)
  if not isinstance(blob, dict):
    v.fail("(top level)", "must be an object")
  if blob.get("schema") != SCHEMA:
    v.fail("schema", f"must be {SCHEMA!r}")
  if blob.get("schema_version") != SCHEMA_VERSION:
    v.fail("schema_version", f"must be {SCHEMA_VERSION}")
  for key, expected in (("experiment", experiment), ("tier", tier)):
    value = v.string(blob, key, "(top level)")
    if expected is not None and value != expected:
      v.fail(key, f"is {value!r}, expected {expected!r}")
  entries = blob.get("entries")
  if not isinstance(entries, list):
    v.fail("entries", "must be a list")
  seen = set()
  for i, entry in enumerate(entries):
    field = f"entries[{i}]"
    if not isinstance(entry, dict):
      v.fail(field, "must be an object")
    metric = v.string(entry, "metric", field)
    if metric in seen:
      v.fail(f"{field}.metric", f"duplicate metric {metric!r}")
    seen.add(metric)
    validate_tolerance(entry.get("tolerance"), f"{field}.tolerance", v)
    validate_provenance(entry.get("provenance"), f"{field}.provenance", v)
    kind = entry["tolerance"]["kind"]
    if kind in ("absolute", "relative"):
      v.number(entry, "value", field)
    if kind == "statistical":
      v.numbers(entry, "values", field, min_len=2)


def load(references_dir: str, experiment: str, tier: str) -> dict[str, Any]:
  path = reference_path(references_dir, experiment, tier)
  if not os.path.exists(path):
    raise ReferenceFileError(f"{path}: reference file not found (bless a run to create it)")
  try:
    with open(path) as f:
      blob = json.load(f)
  except json.JSONDecodeError as e:
    raise ReferenceFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
  validate(blob, path, experiment, tier)
  return blob


def empty(experiment: str, tier: str) -> dict[str, Any]:
  return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "experiment": experiment, "tier": tier, "entries": []}


# -- checking ------------------------------------------------------------------------------------
def describe_tolerance(rule: Mapping[str, Any]) -> str:
  kind = rule["kind"]
  if kind == "absolute":
    return f"±{rule['atol']:g}"
  if kind == "relative":
    return f"±{rule['rtol']:g} rel"
  if kind == "interval":
    return f"[{rule['low']:g}, {rule['high']:g}]"
  if rule["test"] == "welch_t":
    return f"Welch t {rule['alternative']} α={rule['alpha']:g}"
  return f"|Δ| <= {rule['k']:g} pooled SE"


def describe_reference(entry: Mapping[str, Any]) -> str:
  rule = entry["tolerance"]
  if rule["kind"] == "statistical":
    values = entry["values"]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
    return f"{format_value(mean, sd)} (n={len(values)})"
  if "value" in entry:
    return format_value(entry["value"])
  return "-"


def check(entry: Mapping[str, Any], measured: Metric | None) -> tuple[bool, str]:
  """Applies an entry's tolerance rule to a run's metric. Returns (passed, detail)."""
  if measured is None or not measured.values:
    return False, "metric missing from run"
  if not measured.finite:
    return False, f"not finite: {measured.values}"
  rule = entry["tolerance"]
  kind = rule["kind"]
  value = measured.mean
  if kind == "absolute":
    error = abs(value - entry["value"])
    return error <= rule["atol"], f"|Δ|={error:.3g}"
  if kind == "relative":
    error = abs(value - entry["value"])
    bound = rule["rtol"] * abs(entry["value"])
    return error <= bound, f"|Δ|/|ref|={error / abs(entry['value']) if entry['value'] else math.inf:.3g}"
  if kind == "interval":
    return rule["low"] <= value <= rule["high"], ""
  reference = entry["values"]
  if rule["test"] == "welch_t":
    result = stats.welch_t_test(measured.values, reference, alternative=rule["alternative"])
    return result.p_value >= rule["alpha"], f"p={result.p_value:.3g}"
  se = stats.pooled_standard_error(measured.values, reference)
  diff = abs(value - sum(reference) / len(reference))
  bound = rule["k"] * se
  return diff <= bound, f"|Δ|={diff:.3g} vs {bound:.3g}"


# -- blessing ------------------------------------------------------------------------------------
def measured_provenance(record: Mapping[str, Any], metric: Metric, reason: str, blessed_at: str) -> dict[str, Any]:
  return {"kind": "measured", "run_id": record["run_id"], "commit": record["environment"].get("git", {}).get("commit"),
          "dirty": record["environment"].get("git", {}).get("dirty"), "fingerprint": record["environment"],
          "seeds": list(metric.seeds), "values": list(metric.values), "blessed_at": blessed_at, "reason": reason}


def rule_for(metric_name: str, metric: Metric, existing: Mapping[str, Any] | None,
             rules: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
  """The tolerance rule bless uses: the entry's current rule, else the experiment's declared rule."""
  import fnmatch
  if existing is not None:
    return existing["tolerance"]
  for pattern, rule in rules.items():
    if fnmatch.fnmatchcase(metric_name, pattern):
      return rule
  return None


def bless(current: Mapping[str, Any], record: Mapping[str, Any], metrics: Mapping[str, Metric], reason: str,
          rules: Mapping[str, Mapping[str, Any]], blessed_at: str) -> tuple[dict[str, Any], list[str], list[str]]:
  """Returns the new reference blob, the metrics blessed and those skipped (no rule / not enough seeds).

  Entries with theory or paper provenance are kept as they are: a run never overwrites them.
  """
  by_metric = {e["metric"]: e for e in current["entries"]}
  blessed, skipped = [], []
  for name, metric in sorted(metrics.items()):
    existing = by_metric.get(name)
    if existing is not None and existing["provenance"]["kind"] != "measured":
      continue
    rule = rule_for(name, metric, existing, rules)
    if rule is None:
      skipped.append(f"{name} (no tolerance rule declared)")
      continue
    if not metric.finite:
      skipped.append(f"{name} (not finite)")
      continue
    if rule["kind"] == "statistical" and metric.n < 2:
      skipped.append(f"{name} (statistical rule needs >= 2 seeds)")
      continue
    entry: dict[str, Any] = {"metric": name, "value": metric.mean, "tolerance": dict(rule),
                             "provenance": measured_provenance(record, metric, reason, blessed_at)}
    if rule["kind"] == "statistical":
      entry["values"] = list(metric.values)
    by_metric[name] = entry
    blessed.append(name)
  new = dict(current)
  new["entries"] = [by_metric[k] for k in sorted(by_metric)]
  return new, blessed, skipped


