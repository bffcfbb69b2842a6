"""Compares a run with its stored references and re-evaluates its claims."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from harness import claims as claims_lib
from harness import records, references, registry
from harness.errors import HarnessError
from harness.metrics import summarize


@dataclasses.dataclass(frozen=True)
class Row:
  metric: str
  reference: str
  measured: str
  tolerance: str
  provenance: str
  passed: bool
  detail: str


@dataclasses.dataclass
class Comparison:
  run_id: str
  experiment: str
  tier: str
  rows: list[Row]
  claims: list[dict[str, Any]]
  reference_file: str

  @property
  def references_passed(self) -> bool:
    return all(r.passed for r in self.rows)

  @property
  def claims_passed(self) -> bool:
    return claims_lib.all_passed(self.claims)

  @property
  def passed(self) -> bool:
    return self.references_passed and self.claims_passed


def evaluate_claims(record: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Claims as the current code states them, applied to the record's metrics.

  Falls back to the outcomes stored in the record when the experiment is not registered here.
  """
  try:
    experiment = registry.get(record["experiment"])
  except HarnessError:
    return list(record["claims"])
  return claims_lib.evaluate_all(experiment.claims, records.metrics_of(record), record.get("tier"),
                                 record.get("dtype"))


def compare(record: Mapping[str, Any], references_dir: str) -> Comparison:
  blob = references.load(references_dir, record["experiment"], record["tier"])
  metrics = records.metrics_of(record)
  rows = []
  for entry in blob["entries"]:
    measured = metrics.get(entry["metric"])
    passed, detail = references.check(entry, measured, record.get("dtype"), references.reference_dtype(blob, entry))
    rows.append(Row(metric=entry["metric"], reference=references.describe_reference(entry),
                    measured=summarize(measured.values) if measured and measured.values else "missing",
                    tolerance=references.describe_tolerance(entry["tolerance"]),
                    provenance=entry["provenance"]["kind"], passed=passed, detail=detail))
  return Comparison(record["run_id"], record["experiment"], record["tier"], rows, evaluate_claims(record),
                    references.reference_path(references_dir, record["experiment"], record["tier"]))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 48) -> str:
  cells = [[str(c) if len(str(c)) <= max_width else str(c)[: max_width - 1] + "…" for c in row] for row in rows]
  widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
  line = lambda r: " | ".join(c.ljust(w) for c, w in zip(r, widths))
  return "\n".join([line(headers), "-+-".join("-" * w for w in widths)] + [line(r) for r in cells])


def format_comparison(c: Comparison) -> str:
  out = [f"== {c.experiment}/{c.tier}  run {c.run_id}",
         f"references: {c.reference_file}"]
  out.append(_table(("metric", "reference", "measured", "tolerance", "source", "verdict"),
                    [(r.metric, r.reference, r.measured, r.tolerance, r.provenance,
                      ("ok " if r.passed else "FAIL ") + r.detail) for r in c.rows]) if c.rows
             else "(no reference entries)")
  out.append("claims:")
  out.append(_table(("claim", "check", "verdict"),
                    [(cl["name"], cl["check"], claims_lib.verdict(cl) + " " + cl["detail"])
                     for cl in c.claims], max_width=72) if c.claims else "(no claims)")
  n_fail = sum(not r.passed for r in c.rows)
  out.append(f"references: {len(c.rows) - n_fail}/{len(c.rows)} ok; claims: "
             f"{claims_lib.count(c.claims)} ok -> {'PASS' if c.passed else 'FAIL'}")
  return "\n".join(out)


def summary_table(comparisons: Sequence[Comparison]) -> str:
  """One line per run: experiment, tier, references ok, claims ok, verdict."""
  rows = []
  for c in comparisons:
    rows.append((c.experiment, c.tier, c.run_id,
                 f"{sum(r.passed for r in c.rows)}/{len(c.rows)}",
                 claims_lib.count(c.claims), "PASS" if c.passed else "FAIL"))
  return _table(("experiment", "tier", "run", "references", "claims", "verdict"), rows, max_width=60)
