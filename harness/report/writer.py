"""Writes report.md, report.html (self-contained) and PNG figures for a set of run records.

Several runs (a hardware or software comparison, harness/report/comparison.py): a verdict, the runs, their
environments with the differing fields highlighted, then per experiment and tier: claims per run, each metric
family (references passed per run, whether the runs agree within the family's tolerance, the fingerprint
differences that could explain a disagreement), time per phase with speed-ups over the baseline run, how much
float32 moves each family against float64, and the figures. Then each run's details (claims with the metrics
they read, every metric with the claims reading it). One run: the same, without the comparison.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from harness import claims as claims_lib  # pylint: disable=wrong-import-position
from harness import compare as compare_lib  # pylint: disable=wrong-import-position
from harness import atomic, environment, references, registry  # pylint: disable=wrong-import-position
from harness.errors import HarnessError  # pylint: disable=wrong-import-position
from harness.metrics import summarize  # pylint: disable=wrong-import-position
from harness.report import comparison as cmp  # pylint: disable=wrong-import-position
from harness.report.document import Cell, Details, Figure, Heading, Paragraph, Table, to_html, to_markdown  # noqa

MAX_CURVE_SERIES = 20


def _curve_figure(name: str, curve: Mapping[str, Any]):
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for series in curve["series"][:MAX_CURVE_SERIES]:
    label = f"seed {series['seed']}" if series["seed"] is not None else None
    ax.plot(series["x"], series["y"], label=label, lw=1)
  ax.set_xlabel(curve.get("x_label", "x"))
  ax.set_ylabel(curve.get("y_label", "y"))
  ax.set_title(name, fontsize=9)
  if any(s["seed"] is not None for s in curve["series"]):
    ax.legend(fontsize=6)
  fig.tight_layout()
  return fig


def _figures(record: Mapping[str, Any]) -> dict[str, Any]:
  figures = {}
  try:
    experiment = registry.get(record["experiment"])
  except HarnessError:
    experiment = None
  if experiment is not None and experiment.figures is not None:
    figures.update(experiment.figures(record))
  for name, curve in record.get("curves", {}).items():
    figures.setdefault("curve_" + name, _curve_figure(name, curve))
  return figures


def _save_figures(record: Mapping[str, Any], out_dir: str) -> list[str]:
  paths = []
  for name, fig in _figures(record).items():
    filename = f"{record['run_id']}__{name}".replace("/", "_") + ".png"
    fig.savefig(os.path.join(out_dir, filename), dpi=110)
    plt.close(fig)
    paths.append(filename)
  return paths


LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_METRIC_ROWS = 60   # a family's full table in the details: beyond this, the disagreeing rows and the first ones


def _label(k: int) -> str:
  return LABELS[k] if k < len(LABELS) else f"R{k + 1}"


def _value(metric) -> str:
  return "-" if metric is None or not metric.values else summarize(metric.values)


def _verdict_cell(passed: bool | None, text: str = "") -> Cell:
  if passed is None:
    return Cell(text or "-", "muted")
  return Cell(text or ("ok" if passed else "FAIL"), "ok" if passed else "fail")


def _claim_cell(outcome) -> Cell:
  verdict = claims_lib.verdict(outcome)
  cls = "ok" if verdict == "ok" else "fail" if verdict in ("FAIL", "ERROR") else "muted"
  return Cell(verdict, cls)


def _runs_table(runs, labels, baseline, groups_by_run) -> Table:
  rows = []
  for k, run in enumerate(runs):
    group = groups_by_run[k]
    comparison = group.comparisons[group.runs.index(run)]
    claims = group.claims[group.runs.index(run)]
    refs = (f"{sum(r.passed for r in comparison.rows)}/{len(comparison.rows)}" if comparison is not None
            else "no reference")
    passed = (comparison is None or comparison.references_passed) and claims_lib.all_passed(claims)
    same_tier = (baseline["experiment"], baseline["tier"]) == (run["experiment"], run["tier"])
    base_wall = baseline.get("wall_time_s") if same_tier else None
    speedup = ("-" if not base_wall or not run.get("wall_time_s") else f"{base_wall / run['wall_time_s']:.2f}x")
    rows.append([Cell(labels[k] + (" (baseline)" if run is baseline else "")), run["run_id"],
                 f"{run['experiment']}/{run['tier']}", run.get("dtype") or "-",
                 run["environment"].get("keras_backend") or "-", cmp._device(run),  # pylint: disable=protected-access
                 Cell(f"{run.get('wall_time_s') or 0:.1f}", "num"), Cell(speedup, "num"),
                 _verdict_cell(comparison.references_passed if comparison else None, refs),
                 _verdict_cell(claims_lib.all_passed(claims), claims_lib.count(claims)),
                 _verdict_cell(passed, "PASS" if passed else "FAIL")])
  return Table(("run", "run id", "experiment/tier", "precision", "backend", "device", "wall s", "speed-up vs baseline",
                "references", "claims", "verdict"), rows)


def _environment_table(runs, labels) -> Table:
  rows = cmp.environment_rows(runs)
  rows.sort(key=lambda r: not r[2])   # the fields that differ first
  return Table(["field"] + [labels[k] for k in range(len(runs))],
               [[Cell(label, "diff" if differs else "")] + [Cell(v, "diff" if differs else "") for v in values]
                for label, values, differs in rows],
               caption="highlighted: fields that differ between the runs")


def _families_table(group: cmp.Group, labels) -> Table:
  rows = []
  for family in group.families:
    compared = family.compared
    disagreeing = family.disagreeing
    agree = (Cell("not compared", "muted") if not compared else
             Cell(f"agree ({len(compared)})", "ok") if not disagreeing else
             Cell(f"{len(disagreeing)} of {len(compared)} disagree", "fail"))
    refs = []
    for k in range(len(group.runs)):
      passed, total = family.reference_counts(k)
      refs.append(_verdict_cell(None if not total else passed == total, f"{passed}/{total}" if total else "-"))
    spread = max((r.relative_spread() for r in family.rows), default=0.0)
    causes = "; ".join(dict.fromkeys(c for r in disagreeing for c in group.explanations(r))) or ("-" if not disagreeing else "same fingerprint: seeds or nondeterminism")
    rows.append([Cell(family.template), Cell(str(len(family.rows)), "num")] + refs
                + [agree, Cell(f"{spread:.2g}", "num"), Cell(causes, "diff" if disagreeing else "muted")])
  return Table(["family", "metrics"] + [f"{labels[k]} vs reference" for k in range(len(group.runs))]
               + ["runs agree (family's tolerance)", "largest relative spread", "fingerprint differences"], rows)


def _metric_rows(group: cmp.Group, rows, labels) -> list[list[Cell]]:
  out = []
  for row in rows:
    values = [Cell(_value(v), "fail" if row.passes_reference[k] is False else "num") for k, v in enumerate(row.values)]
    reference = Cell("-", "muted")
    if row.reference is not None:
      reference = Cell(f"{references.describe_reference(row.reference)} {references.describe_tolerance(row.rule)}")
    agree = (Cell("-", "muted") if row.agree is None else Cell("agree", "ok") if row.agree else
             Cell("; ".join(f"{labels[i]}/{labels[j]}: {d}" for i, j, d in row.disagreements), "fail"))
    out.append([Cell(row.name)] + values + [reference, agree])
  return out


def _group_blocks(group: cmp.Group, labels, baseline, out_dir) -> list:
  blocks = [Heading(2, f"{group.experiment} / {group.tier}", anchor=f"{group.experiment}-{group.tier}")]
  members = [labels[k] for k in range(len(group.runs))]
  if group.reference_error:
    blocks.append(Paragraph(f"No reference comparison: {group.reference_error}", "note"))
  claim_names = list(dict.fromkeys(c["name"] for outcomes in group.claims for c in outcomes))
  by_name = [{c["name"]: c for c in outcomes} for outcomes in group.claims]
  blocks += [Heading(3, "Claims"),
             Table(["claim"] + members, [[Cell(name)] + [_claim_cell(b[name]) if name in b else Cell("-", "muted")
                                                          for b in by_name] for name in claim_names])]
  blocks += [Heading(3, "Metric families"), _families_table(group, labels)]
  disagreeing = [r for f in group.families for r in f.disagreeing]
  failing = [r for f in group.families for r in f.rows if False in r.passes_reference and r not in disagreeing]
  headers = ["metric"] + members + ["reference", "runs agree"]
  if disagreeing or failing:
    blocks.append(Details(f"{len(disagreeing)} metric(s) where the runs disagree, {len(failing)} more failing a "
                          "reference", [Table(headers, _metric_rows(group, disagreeing + failing, labels))], open=True))
  for family in group.families:
    rows = family.rows
    if len(rows) > MAX_METRIC_ROWS:
      rows = family.disagreeing + [r for r in rows if r.agree is not False][:MAX_METRIC_ROWS]
    blocks.append(Details(f"{family.template}: {len(family.rows)} metric(s)" + (f" — {family.description}" if family.description else ""),
                          [Table(headers, _metric_rows(group, rows, labels))]))
  base = baseline if baseline in group.runs else group.runs[0]
  speed = cmp.speedups(group.runs, base)
  blocks += [Heading(3, f"Time per phase (speed-up over {labels[group.runs.index(base)]})"),
             Table(["phase"] + [f"{m} s" for m in members] + [f"{m} speed-up" for m in members],
                   [[Cell(phase)] + [Cell(cmp.finite_or_dash(s, ".1f"), "num") for s in seconds]
                    + [Cell("-" if u is None else f"{u:.2f}x", "num") for u in ups] for phase, seconds, ups in speed]),
             Paragraph("Machine throughput (calibrated XLA matmul, GFLOP/s): " + "; ".join(
                 f"{m} " + (", ".join(f"{d} {g:.0f}" for d, g in (r["environment"].get("matmul_gflops") or {}).items()) or "-")
                 for m, r in zip(members, group.runs)), "note")]
  pair, precision_rows = cmp.precision_rows(group)
  if pair:
    i32, i64 = pair
    blocks += [Heading(3, f"Precision: float32 ({labels[i32]}) against float64 ({labels[i64]})"),
               Table(["family", "metrics", "largest relative change", "at", "of the rounding bound", "smallest Welch p"],
                     [[Cell(p.family), Cell(str(p.metrics), "num"), Cell(f"{p.worst_relative:.2g}", "num"), Cell(p.worst_metric),
                       Cell(cmp.finite_or_dash(p.of_rounding_bound, ".2g"),
                            "fail" if (p.of_rounding_bound or 0) > 1 else "num"),
                       Cell(cmp.finite_or_dash(p.smallest_p, ".2g"), "num")] for p in precision_rows],
                     caption="deterministic families: the change as a fraction of their stated rounding bound (<= 1 "
                             "expected); statistical ones: the smallest Welch p over their metrics")]
  figures = []
  for k, run in enumerate(group.runs):
    figures += [Figure(name, f"{labels[k]}: {name.split('__', 1)[-1][:-4]}") for name in _save_figures(run, out_dir)]
  if figures:
    blocks += [Heading(3, "Figures")] + figures
  return blocks


def _run_details(record, label: str) -> Details:
  env = record["environment"]
  claims = compare_lib.evaluate_claims(record)
  read_by: dict[str, list[str]] = {}
  for c in claims:
    for name in c.get("metrics", []):
      read_by.setdefault(name, []).append(c["name"])
  blocks = [Paragraph(f"finished {record.get('finished_at')}, wall time {record.get('wall_time_s') or 0:.1f} s "
                      f"(expected {record.get('expected_runtime_s') or 0:.0f} s); seeds {record['seeds']}; "
                      f"{record['dtype']}; {environment.one_line(env)}; commit {env.get('git', {}).get('commit')}"),
            Table(("claim", "statement", "check", "verdict", "metrics read"),
                  [(c["name"], c["statement"], c["check"], claims_lib.verdict(c) + ": " + c["detail"],
                    _metrics_read(c)) for c in claims]),
            Table(("metric", "value (mean ± sd)", "unit", "read by claims"),
                  [(name, summarize(m["values"]) if m["values"] else "-", m.get("unit", ""),
                    ", ".join(read_by.get(name, ()))) for name, m in record["metrics"].items()])]
  return Details(f"{label}: {record['experiment']} / {record['tier']} — run {record['run_id']}", blocks)


def _metrics_read(outcome: Mapping[str, Any], shown: int = 3) -> str:
  """The metrics a claim's check read (outcomes of older records do not list them)."""
  names = outcome.get("metrics", [])
  return ", ".join(names[:shown]) + (f" (+{len(names) - shown} more)" if len(names) > shown else "")


def _find_baseline(record_list, baseline: str | None):
  if baseline is None:
    return record_list[0]
  for record in record_list:
    if baseline == record["run_id"]:
      return record
  raise HarnessError(f"--baseline={baseline!r} is none of the runs ({', '.join(r['run_id'] for r in record_list)})")


def write_report(record_list: Sequence[Mapping[str, Any]], out_dir: str, references_dir: str | None = None,
                 baseline: str | None = None) -> str:
  """Writes report.md, report.html and figures into out_dir (refuses a folder holding a report)."""
  if os.path.exists(os.path.join(out_dir, "report.md")):
    raise HarnessError(f"{out_dir} already holds a report; choose a new --report_dir")
  base = _find_baseline(record_list, baseline)
  os.makedirs(out_dir, exist_ok=True)
  labels = [_label(k) for k in range(len(record_list))]
  group_list = cmp.groups(record_list, references_dir)
  groups_by_run = [next(g for g in group_list if r in g.runs) for r in record_list]
  compared = [r for g in group_list for f in g.families for r in f.compared]
  disagree = [r for r in compared if r.agree is False]
  runs_ok = all(((c is None or c.references_passed) and claims_lib.all_passed(cl))
                for g in group_list for c, cl in zip(g.comparisons, g.claims))
  several = len(record_list) > 1
  title = (f"Hardware comparison: {len(record_list)} runs" if several else f"Run report: {record_list[0]['run_id']}")
  verdict = ((f"The runs agree on {len(compared) - len(disagree)} of {len(compared)} metrics compared within their "
              f"families' tolerances" + (f"; {len(disagree)} disagree (see each experiment's families)" if disagree else "")
              + ". ") if several else "") + ("Every run passes its references and claims." if runs_ok
                                              else "At least one run fails a reference or a claim.")
  blocks = [Heading(1, title), Paragraph(verdict, "verdict-ok" if runs_ok and not disagree else "verdict-fail"),
            Heading(2, "Runs"), _runs_table(record_list, labels, base, groups_by_run)]
  if several:
    blocks += [Heading(2, "Environments"), _environment_table(record_list, labels)]
  for group in group_list:
    group_labels = [labels[record_list.index(r)] for r in group.runs]
    blocks += _group_blocks(group, group_labels, base, out_dir)
  blocks += [Heading(2, "Run details")] + [_run_details(r, labels[k])
                                           for k, r in enumerate(record_list)]
  # report.html first: report.md marks a finished report (a folder holding one is refused above)
  atomic.write_text_atomic(os.path.join(out_dir, "report.html"), to_html(blocks, title, out_dir))
  atomic.write_text_atomic(os.path.join(out_dir, "report.md"), to_markdown(blocks))
  return os.path.join(out_dir, "report.md")


__all__ = ["write_report"]
