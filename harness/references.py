"""Stored reference numbers: `reference_results/<experiment>/<tier>.json`.

File format (schema_version 2):
  {"schema": "harness.references", "schema_version": 2, "experiment": "...", "tier": "...",
   "blessings": {blessing_id: {"run_id", "commit", "dirty", "blessed_at", "reason", "wall_time_s" (null when
                               unknown), "phases" ({phase: wall seconds}, optional: the pre-flight's runtime per
                               phase), "fingerprint": the run's environment}},
   "entries": [{"metric": name, "value": number, "values": [raw per-seed numbers], "seeds": [their seeds],
                "tolerance": rule, "provenance": provenance}, ...]}
  A blessing (one `bless` of one run) is stored once; its entries point at it by id (the run id; a run
  blessed a second time gets `<run_id>@<blessed_at>`). Measured entries always carry `values` and `seeds`;
  theory and paper entries carry `values` only under a statistical rule. `load` reads version 1 files
  (the blessing repeated in every entry's provenance) by upgrading them in memory (`upgrade_v1`); `write`
  always writes version 2, laid out for diffs: the blessings indented, each entry on one line, entries
  sorted by metric.

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
  An absolute or relative rule may carry `rounding` {"ulps": n, "relative": bool} (harness.precision): the
  deterministic metric's rounding error bound, in unit roundoffs u, of |value| or absolute. The check then
  allows atol (or rtol |value|) + n (u(run's precision) + u(reference's precision)) (|value| or 1): the
  reference's precision is its blessing's `fingerprint.float_precision` (theory and paper values: float64).

Provenance (`provenance.kind`):
  theory    {"derivation": how the number follows, "citation": paper/equation}
  paper     {"arxiv": id, "location": table or figure, "checked_against_text": bool, "quote": optional}
  measured  {"blessing": id of an entry in `blessings`}
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness import atomic, papers, precision, stats
from harness.errors import ReferenceFileError
from harness.metrics import Metric, format_value

SCHEMA = "harness.references"
SCHEMA_VERSION = 2
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
  if kind in ("absolute", "relative"):
    v.number(rule, "atol" if kind == "absolute" else "rtol", field, minimum=0)
    if "rounding" in rule:
      rounding = rule["rounding"]
      if not isinstance(rounding, dict) or not isinstance(rounding.get("relative"), bool):
        v.fail(f"{field}.rounding", "must be an object {ulps: number >= 0, relative: true/false}")
      v.number(rounding, "ulps", f"{field}.rounding", minimum=0)
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
    if not papers.is_arxiv_id(arxiv):
      v.fail(f"{field}.arxiv", f"not an arXiv id: {arxiv!r}")
    v.string(prov, "location", field)
    if not isinstance(prov.get("checked_against_text"), bool):
      v.fail(f"{field}.checked_against_text", "must be true or false")
  else:
    v.string(prov, "blessing", field)
    extra = sorted(set(prov) - {"kind", "blessing"})
    if extra:
      v.fail(field, f"measured provenance holds only 'kind' and 'blessing' (the run is in 'blessings'), "
             f"got {', '.join(extra)}")


def validate_blessing(blessing: Any, field: str, v: _Validator) -> None:
  if not isinstance(blessing, dict):
    v.fail(field, "must be an object")
  for key in ("run_id", "blessed_at", "reason"):
    v.string(blessing, key, field)
  for key in ("commit", "dirty", "wall_time_s"):
    if key not in blessing:
      v.fail(f"{field}.{key}", "missing (null when unknown)")
  if blessing["wall_time_s"] is not None:
    v.number(blessing, "wall_time_s", field, minimum=0)
  if not isinstance(blessing.get("fingerprint"), dict):
    v.fail(f"{field}.fingerprint", "must be an object (the run's environment)")
  phases = blessing.get("phases", {})
  if not isinstance(phases, dict) or any(isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0
                                         for t in phases.values()):
    v.fail(f"{field}.phases", "must map phase names to wall seconds >= 0 (optional)")


def validate_seeds(entry: Mapping[str, Any], n_values: int, field: str, v: _Validator) -> None:
  seeds = entry.get("seeds")
  if not isinstance(seeds, list) or len(seeds) != n_values:
    v.fail(f"{field}.seeds", f"must be a list of {n_values} seeds, one per value")
  for i, seed in enumerate(seeds):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
      v.fail(f"{field}.seeds[{i}]", f"must be an integer or null, got {seed!r}")


def validate(blob: Any, path: str, experiment: str | None = None, tier: str | None = None) -> None:
  """Raises a one-line ReferenceFileError naming the file and the field (version 2; `load` upgrades 1)."""
  v = _Validator(path)
  if not isinstance(blob, dict):
    v.fail("(top level)", "must be an object")
  if blob.get("schema") != SCHEMA:
    v.fail("schema", f"must be {SCHEMA!r}")
  if blob.get("schema_version") != SCHEMA_VERSION:
    v.fail("schema_version", f"must be {SCHEMA_VERSION} (version 1 is read by load(), which upgrades it), "
           f"got {blob.get('schema_version')!r}")
  for key, expected in (("experiment", experiment), ("tier", tier)):
    value = v.string(blob, key, "(top level)")
    if expected is not None and value != expected:
      v.fail(key, f"is {value!r}, expected {expected!r}")
  blessings = blob.get("blessings")
  if not isinstance(blessings, dict):
    v.fail("blessings", "must be an object {blessing id: the blessed run}")
  for blessing_id, blessing in blessings.items():
    if not blessing_id.strip():
      v.fail("blessings", "a blessing id must be a non-empty string")
    validate_blessing(blessing, f"blessings.{blessing_id}", v)
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
    if entry["provenance"]["kind"] == "measured":
      blessing_id = entry["provenance"]["blessing"]
      if blessing_id not in blessings:
        v.fail(f"{field}.provenance.blessing", f"no blessing {blessing_id!r} in 'blessings'")
      validate_seeds(entry, len(v.numbers(entry, "values", field)), field, v)


def upgrade_v1(blob: Any, path: str = "(version 1 blob)") -> dict[str, Any]:
  """A version 1 blob (each measured entry repeating its run's provenance) as version 2.

  Measured provenance {run_id, commit, dirty, fingerprint, seeds, values, blessed_at, reason} becomes a
  blessing (id: the run id; `<run_id>@<blessed_at>` for a second blessing of the same run) with
  wall_time_s null (version 1 did not store it), and the entry keeps `values` and `seeds`. Entries keep
  their order, so errors found afterwards name the same `entries[i]`. Everything else is copied as is.
  """
  v = _Validator(path)
  if not isinstance(blob, dict) or blob.get("schema_version") != 1:
    v.fail("schema_version", "upgrade_v1 takes a version 1 blob")
  if not isinstance(blob.get("entries"), list):
    v.fail("entries", "must be a list")
  blessings: dict[str, dict[str, Any]] = {}
  entries = []
  for i, entry in enumerate(blob["entries"]):
    field = f"entries[{i}]"
    prov = entry.get("provenance") if isinstance(entry, dict) else None
    if not isinstance(prov, dict) or prov.get("kind") != "measured":
      entries.append(entry)
      continue
    pfield = f"{field}.provenance"
    for key in ("run_id", "blessed_at", "reason"):
      v.string(prov, key, pfield)
    if "commit" not in prov or "dirty" not in prov:
      v.fail(pfield, "measured provenance needs 'commit' and 'dirty'")
    if not isinstance(prov.get("fingerprint"), dict):
      v.fail(f"{pfield}.fingerprint", "must be an object (the run's environment)")
    v.numbers(prov, "values", pfield)
    if not isinstance(prov.get("seeds"), list):
      v.fail(f"{pfield}.seeds", "must be a list")
    if "values" in entry and entry["values"] != prov["values"]:
      v.fail(f"{field}.values", "differs from provenance.values (version 1 stores the raw values twice)")
    blessing = {"run_id": prov["run_id"], "commit": prov["commit"], "dirty": prov["dirty"],
                "blessed_at": prov["blessed_at"], "reason": prov["reason"], "wall_time_s": None,
                "fingerprint": prov["fingerprint"]}
    blessing_id = _blessing_id(blessing, blessings)
    blessings[blessing_id] = blessing
    new = {k: val for k, val in entry.items() if k != "provenance"}
    new.update(values=list(prov["values"]), seeds=list(prov["seeds"]),
               provenance={"kind": "measured", "blessing": blessing_id})
    entries.append(new)
  upgraded = {k: val for k, val in blob.items() if k not in ("entries", "schema_version")}
  upgraded.update(schema_version=SCHEMA_VERSION, blessings=blessings, entries=entries)
  return _with_key_order(upgraded, _TOP_KEYS)


def _blessing_id(blessing: Mapping[str, Any], taken: Mapping[str, Mapping[str, Any]]) -> str:
  """The run id, unless `taken` holds a different blessing under it: then `<run_id>@<blessed_at>`(-2, -3...)."""
  candidates = [blessing["run_id"], f"{blessing['run_id']}@{blessing['blessed_at']}"]
  candidates += [f"{candidates[1]}-{n}" for n in range(2, len(taken) + 3)]
  for candidate in candidates:
    if candidate not in taken or taken[candidate] == blessing:
      return candidate
  raise AssertionError("unreachable: more candidates than blessings")


def load(references_dir: str, experiment: str, tier: str) -> dict[str, Any]:
  """The validated version 2 blob of a reference file (a version 1 file is upgraded in memory)."""
  path = reference_path(references_dir, experiment, tier)
  if not os.path.exists(path):
    raise ReferenceFileError(f"{path}: reference file not found (bless a run to create it)")
  try:
    with open(path, encoding="utf-8") as f:
      blob = json.load(f)
  except json.JSONDecodeError as e:
    raise ReferenceFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
  if isinstance(blob, dict) and blob.get("schema") == SCHEMA and blob.get("schema_version") == 1:
    blob = upgrade_v1(blob, path)
  validate(blob, path, experiment, tier)
  return blob


def empty(experiment: str, tier: str) -> dict[str, Any]:
  return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "experiment": experiment, "tier": tier,
          "blessings": {}, "entries": []}


# -- writing -------------------------------------------------------------------------------------
_TOP_KEYS = ("schema", "schema_version", "experiment", "tier", "blessings", "entries")
_ENTRY_KEYS = ("metric", "value", "values", "seeds", "tolerance", "provenance")
_RULE_KEYS = ("kind", "test", "atol", "rtol")
_PROVENANCE_KEYS = ("kind", "blessing", "derivation", "citation", "arxiv", "location", "checked_against_text")
_BLESSING_KEYS = ("run_id", "blessed_at", "reason", "commit", "dirty", "wall_time_s", "phases", "fingerprint")


def _with_key_order(blob: Mapping[str, Any], first: Iterable[str]) -> dict[str, Any]:
  """`blob` with the keys in `first` first (in that order), then the others sorted."""
  first = [k for k in first if k in blob]
  return {k: blob[k] for k in first + sorted(set(blob) - set(first))}


def _entry_line(entry: Mapping[str, Any]) -> str:
  entry = _with_key_order(entry, _ENTRY_KEYS)
  for key, order in (("tolerance", _RULE_KEYS), ("provenance", _PROVENANCE_KEYS)):
    if isinstance(entry.get(key), Mapping):
      entry[key] = _with_key_order(entry[key], order)
  return json.dumps(entry, ensure_ascii=False, allow_nan=False)


def dumps(blob: Mapping[str, Any]) -> str:
  """The file text of a version 2 blob, laid out so that a re-bless reads as a diff.

  Top-level fields one a line; `blessings` indented (ordered by blessed_at, then id; a blessing's fields
  in a fixed order, the fingerprint as the run recorded it); `entries` one entry a line, sorted by
  metric, each entry's keys in a fixed order. `json.loads(dumps(blob)) == blob` up to entry order.
  """
  blessings = sorted(blob.get("blessings", {}).items(), key=lambda item: (str(item[1].get("blessed_at")), item[0]))
  lines = ["{"]
  for key, value in _with_key_order(blob, _TOP_KEYS).items():
    if key == "blessings":
      if not blessings:
        lines.append(' "blessings": {},')
        continue
      lines.append(' "blessings": {')
      for n, (blessing_id, blessing) in enumerate(blessings):
        text = json.dumps(_with_key_order(blessing, _BLESSING_KEYS), indent=1, ensure_ascii=False, allow_nan=False)
        text = "\n".join("  " + line for line in text.splitlines())
        lines.append(f"  {json.dumps(blessing_id, ensure_ascii=False)}: {text.lstrip()}"
                     + ("," if n < len(blessings) - 1 else ""))
      lines.append(" },")
    elif key == "entries":
      entries = sorted(value, key=lambda e: e["metric"])
      if not entries:
        lines.append(' "entries": [],')
        continue
      lines.append(' "entries": [')
      lines += ["  " + _entry_line(e) + ("," if n < len(entries) - 1 else "") for n, e in enumerate(entries)]
      lines.append(" ],")
    else:
      lines.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, allow_nan=False)},")
  lines[-1] = lines[-1].rstrip(",")
  return "\n".join(lines + ["}"]) + "\n"


def write(path: str, blob: Mapping[str, Any]) -> None:
  """Writes `dumps(blob)` atomically (`harness.atomic`). Validate first: this writes what it is given."""
  atomic.write_text_atomic(path, dumps(blob))


# -- checking ------------------------------------------------------------------------------------
def describe_tolerance(rule: Mapping[str, Any]) -> str:
  kind = rule["kind"]
  rounding = rule.get("rounding")
  extra = "" if not rounding else f" + {rounding['ulps']:.3g}u" + (" rel" if rounding["relative"] else "")
  if kind == "absolute":
    return f"±{rule['atol']:g}{extra}"
  if kind == "relative":
    return f"±{rule['rtol']:g} rel{extra}"
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


REFERENCE_DTYPE_OF_THEORY = "float64"   # theory and paper values: closed forms evaluated in float64


def reference_dtype(blob: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
  """The precision an entry's value was computed in: its blessing's float_precision (theory/paper: float64)."""
  if entry["provenance"]["kind"] != "measured":
    return REFERENCE_DTYPE_OF_THEORY
  blessing = blob.get("blessings", {}).get(entry["provenance"]["blessing"], {})
  return blessing.get("fingerprint", {}).get("float_precision") or REFERENCE_DTYPE_OF_THEORY


def check(entry: Mapping[str, Any], measured: Metric | None, dtype: str | None = None,
          reference_dtype: str | None = None) -> tuple[bool, str]:
  """Applies an entry's tolerance rule to a run's metric. Returns (passed, detail).

  `dtype`, `reference_dtype`: the precisions of the run and of the reference value, for a rule's `rounding`
  (each adds its unit roundoff; None adds nothing)."""
  if measured is None or not measured.values:
    return False, "metric missing from run"
  if not measured.finite:
    return False, f"not finite: {measured.values}"
  rule = entry["tolerance"]
  kind = rule["kind"]
  value = measured.mean
  if kind in ("absolute", "relative"):
    error = abs(value - entry["value"])
    rounding = 0.0
    if rule.get("rounding"):
      rounding = precision.rounding_bound(rule["rounding"], entry["value"], *[d for d in (dtype, reference_dtype) if d])
    if kind == "absolute":
      detail = f"|Δ|={error:.3g}" + (f" vs {rule['atol'] + rounding:.3g}" if rounding else "")
      return error <= rule["atol"] + rounding, detail
    bound = rule["rtol"] * abs(entry["value"]) + rounding
    relative = error / abs(entry["value"]) if entry["value"] else math.inf
    detail = f"|Δ|/|ref|={relative:.3g}" + (f" vs {bound / abs(entry['value']):.3g}" if rounding and entry["value"] else "")
    return error <= bound, detail
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
RuleFor = Callable[[str], "Mapping[str, Any] | None"]
_DERIVED_RULE_KEYS = ("rounding",)   # parts of a rule derived by the family at each bless, never kept stale


def blessing_of(record: Mapping[str, Any], reason: str, blessed_at: str) -> dict[str, Any]:
  """The `blessings` value for blessing `record`'s metrics now."""
  env = record["environment"]
  wall = record.get("wall_time_s")
  return {"run_id": record["run_id"], "commit": env.get("git", {}).get("commit"),
          "dirty": env.get("git", {}).get("dirty"), "blessed_at": blessed_at, "reason": reason,
          "wall_time_s": float(wall) if isinstance(wall, (int, float)) and math.isfinite(wall) else None,
          "phases": {name: float(t) for name, t in (record.get("phases") or {}).items()},
          "fingerprint": env}


def with_entries(blob: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """The blob with `entries` in place (replacing entries of the same metric), sorted by metric."""
  by_metric = {e["metric"]: e for e in blob["entries"]}
  by_metric.update({e["metric"]: dict(e) for e in entries})
  return dict(blob, entries=[by_metric[k] for k in sorted(by_metric)])


def with_rounding(blob: Mapping[str, Any],
                  rule_for: Callable[..., "Mapping[str, Any] | None"]) -> tuple[dict[str, Any], list[str]]:
  """`blob` with each measured entry's `rounding` as its family states it (`rule_for(name, metrics)`), derived
  from the blessed values themselves (a slope's bound reads its points), or dropped where the family states
  none; and the entries whose bound reads metrics the file does not hold (kept as they are: re-bless a run)."""
  from harness.families import MissingMetric  # pylint: disable=import-outside-toplevel
  metrics = {}
  for e in blob["entries"]:
    values = e.get("values") or ([e["value"]] if "value" in e else [])
    if values:
      metrics[e["metric"]] = Metric(values=list(values), seeds=list(e.get("seeds") or [None] * len(values)))
  entries, unresolved = [], []
  for entry in blob["entries"]:
    rule = entry["tolerance"]
    if entry["provenance"]["kind"] == "measured" and rule["kind"] in ("absolute", "relative"):
      try:
        declared = rule_for(entry["metric"], metrics) or {}
      except (MissingMetric, ValueError) as e:
        unresolved.append(f"{entry['metric']} ({e})")
        entries.append(entry)
        continue
      rule = {k: v for k, v in rule.items() if k not in _DERIVED_RULE_KEYS}
      rule.update({k: declared[k] for k in _DERIVED_RULE_KEYS if k in declared})
      entry = dict(entry, tolerance=rule)
    entries.append(entry)
  return dict(blob, entries=entries), unresolved


def prune_blessings(blob: Mapping[str, Any]) -> dict[str, Any]:
  """`blob` without the blessings no entry points at."""
  used = {e["provenance"]["blessing"] for e in blob["entries"] if e["provenance"]["kind"] == "measured"}
  return dict(blob, blessings={k: b for k, b in blob["blessings"].items() if k in used})


def bless(current: Mapping[str, Any], record: Mapping[str, Any], metrics: Mapping[str, Metric], reason: str,
          rule_for: RuleFor, blessed_at: str) -> tuple[dict[str, Any], list[str], list[str]]:
  """Returns the new reference blob, the metrics blessed and those skipped (no rule / not enough seeds).

  `rule_for(metric_name)`: the experiment's declared tolerance rule for that metric (None when it declares
  none); a metric that already has an entry keeps that entry's rule, except its `rounding`, a derived bound
  that the family states afresh for this run (or drops, when the family no longer states one). Entries with theory or paper
  provenance are kept as they are (a run never overwrites them), and so are entries of metrics this run
  does not bless. Blessings no entry points at any more are dropped.
  """
  if current.get("schema_version") == 1:
    current = upgrade_v1(current)
  by_metric = {e["metric"]: e for e in current["entries"]}
  blessed, skipped = [], []
  for name, metric in sorted(metrics.items()):
    existing = by_metric.get(name)
    if existing is not None and existing["provenance"]["kind"] != "measured":
      continue
    declared = rule_for(name)
    rule = existing["tolerance"] if existing is not None else declared
    if existing is not None:
      rule = {k: v for k, v in rule.items() if k not in _DERIVED_RULE_KEYS}
      rule.update({k: declared[k] for k in _DERIVED_RULE_KEYS if declared and k in declared})
    if rule is None:
      skipped.append(f"{name} (no tolerance rule declared)")
      continue
    if not metric.finite:
      skipped.append(f"{name} (not finite)")
      continue
    if rule["kind"] == "statistical" and metric.n < 2:
      skipped.append(f"{name} (statistical rule needs >= 2 seeds)")
      continue
    by_metric[name] = {"metric": name, "value": metric.mean, "values": [float(x) for x in metric.values],
                       "seeds": list(metric.seeds), "tolerance": dict(rule),
                       "provenance": {"kind": "measured", "blessing": None}}  # its id is chosen below
    blessed.append(name)
  kept = prune_blessings(dict(current, entries=[e for e in by_metric.values() if e["metric"] not in blessed]))
  blessings = dict(kept["blessings"])
  if blessed:
    blessing = blessing_of(record, reason, blessed_at)
    blessing_id = _blessing_id(blessing, blessings)
    blessings[blessing_id] = blessing
    for name in blessed:
      by_metric[name]["provenance"]["blessing"] = blessing_id
  return dict(current, blessings=blessings, entries=[by_metric[k] for k in sorted(by_metric)]), blessed, skipped


def bless_diff(old: Mapping[str, Any], new: Mapping[str, Any], run_metrics: Iterable[str] | None = None) -> list[str]:
  """What a bless changed, one line a metric, for a reviewer, then one line of counts.

    + name value                   new entry
    ~ name old -> new (Δ rel x)    value changed (or per-seed values / tolerance, said in the brackets)
    - name (...)                   entry gone from `new`; or, given `run_metrics` (the run's metric names),
                                   a measured entry the run no longer produces (kept, as bless keeps it)
  Entries whose value, per-seed values and tolerance are the same count as unchanged (a re-bless points
  them at the new blessing, which is no change to review).
  """
  if old.get("schema_version") == 1:
    old = upgrade_v1(old)
  before = {e["metric"]: e for e in old["entries"]}
  after = {e["metric"]: e for e in new["entries"]}
  in_run = None if run_metrics is None else set(run_metrics)
  lines, counts = [], {"new": 0, "changed": 0, "removed": 0, "not in run": 0, "unchanged": 0}
  for name in sorted(set(before) | set(after)):
    a, b = before.get(name), after.get(name)
    if a is None:
      lines.append(f"+ {name} {_show(b)}")
      counts["new"] += 1
    elif b is None:
      lines.append(f"- {name} (removed)")
      counts["removed"] += 1
    elif a.get("value") != b.get("value") or a.get("values") != b.get("values") or a["tolerance"] != b["tolerance"]:
      lines.append(f"~ {name} {_show(a)} -> {_show(b)} ({_change(a, b)})")
      counts["changed"] += 1
    elif in_run is not None and name not in in_run and b["provenance"]["kind"] == "measured":
      lines.append(f"- {name} (not in this run; entry kept, from {b['provenance']['blessing']})")
      counts["not in run"] += 1
    else:
      counts["unchanged"] += 1
  return lines + [", ".join(f"{n} {what}" for what, n in counts.items() if n or what == "unchanged")]


def _show(entry: Mapping[str, Any]) -> str:
  return format(entry["value"], ".6g") if isinstance(entry.get("value"), (int, float)) else "-"


def _change(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
  parts = []
  va, vb = a.get("value"), b.get("value")
  if va != vb and isinstance(va, (int, float)) and isinstance(vb, (int, float)):
    parts.append(f"Δ rel {(vb - va) / abs(va):+.2e}" if va else f"Δ {vb - va:+.3g}")
  elif a.get("values") != b.get("values"):
    parts.append("per-seed values changed")
  if a["tolerance"] != b["tolerance"]:
    parts.append(f"tolerance {describe_tolerance(a['tolerance'])} -> {describe_tolerance(b['tolerance'])}")
  return "; ".join(parts)
