"""Speed regression check over pytest-benchmark's saved runs: `make bench` saves a baseline, `make bench-compare`
fails when a benchmark got more than MAX_SLOWDOWN slower on the same machine.

Storage: pytest-benchmark's own (`--benchmark-storage`, one folder per pytest-benchmark machine id inside), under
`.benchmarks/<machine_id()>`: the CPU model, core count and accelerators, so a baseline is only ever compared on
the machine class that made it. Each `make bench` / `make bench-compare` runs the benchmarks in PASSES separate
passes (pytest processes, each saved as `<label>-pass<k>`); a benchmark's rounds are pooled over the passes and
the median of the pooled rounds decides. The passes interleave the benchmarks in time (A B C, A B C, ...), so a
slow minute of this shared VM touches every benchmark a little rather than one benchmark a lot, and the median
ignores the odd slow round.

    python -m harness.benchcompare machine-id
    python -m harness.benchcompare compare --storage=DIR [--baseline=baseline] [--current=current]
        [--max_slowdown=0.10]
Exit codes: 0 no benchmark slower than allowed; 1 a regression; 2 bad input (no baseline, no current run,
baselines of another machine).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import statistics
import sys
from typing import Any, Iterable, Mapping, Sequence

MAX_SLOWDOWN = 0.10
MACHINE_KEY = "harness_machine_id"   # set by benchmarks/perf/conftest.py's pytest_benchmark_update_machine_info


class BenchError(Exception):
  """Bad input: one line, exit 2."""


def machine_id(env: Mapping[str, Any] | None = None) -> str:
  """A file-name-safe id of the machine class: CPU model, cores, accelerators (e.g. intel-xeon-processor-2cpu)."""
  if env is None:
    from harness import environment  # pylint: disable=import-outside-toplevel
    env = environment.fingerprint()
  parts = [str(env.get("cpu_model") or "cpu"), f"{env.get('cpu_affinity') or env.get('cpu_cores')}cpu"]
  if env.get("accelerator_count"):
    parts.append(f"{env['accelerator_count']}x{(env.get('accelerator_names') or [env.get('accelerator_kind')])[0]}")
  slug = re.sub(r"\((r|tm)\)", "", "-".join(parts).lower())
  return re.sub(r"[^a-z0-9]+", "-", slug).strip("-")


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  baseline_s: float | None
  current_s: float | None
  rounds: tuple[int, int]

  @property
  def ratio(self) -> float | None:
    if self.baseline_s is None or self.current_s is None:
      return None
    return self.current_s / self.baseline_s

  def passed(self, max_slowdown: float) -> bool:
    return self.ratio is None or self.ratio <= 1.0 + max_slowdown


def _saved_runs(storage: pathlib.Path, label: str) -> list[dict[str, Any]]:
  """The passes of the latest `<label>` run under `storage`: pytest-benchmark names saves NNNN_<name>.json with a
  counter, and one run is pass1, pass2, ... saved in a row, so the latest pass1 and the passes after it."""
  pattern = re.compile(rf"^(\d+)_{re.escape(label)}-pass(\d+)\.json$")
  saves = sorted((int(m.group(1)), int(m.group(2)), path) for path in storage.rglob("*.json")
                 if (m := pattern.match(path.name)))
  starts = [i for i, (_, k, _) in enumerate(saves) if k == 1]
  if not starts:
    return []
  latest = saves[starts[-1]:]
  runs = []
  for _, _, path in latest:
    try:
      runs.append(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as e:
      raise BenchError(f"{path}: not a pytest-benchmark JSON file ({e})") from None
  return runs


def pooled_rounds(runs: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
  """Per benchmark (fullname), the per-round times of every pass (`stats.data`, saved by --benchmark-save-data)."""
  pooled: dict[str, list[float]] = {}
  for run in runs:
    for bench in run.get("benchmarks", []):
      data = bench.get("stats", {}).get("data")
      if not data:
        raise BenchError(f"benchmark {bench.get('fullname')} has no per-round data (save with --benchmark-save-data)")
      pooled.setdefault(bench["fullname"], []).extend(float(x) for x in data)
  return pooled


def _machine_of(runs: Sequence[Mapping[str, Any]], what: str) -> str | None:
  ids = {run.get("machine_info", {}).get(MACHINE_KEY) for run in runs}
  if len(ids) > 1:
    raise BenchError(f"the {what} passes come from different machines: {sorted(map(str, ids))}")
  return ids.pop() if ids else None


def compare(storage: str | pathlib.Path, baseline: str = "baseline", current: str = "current") -> list[Row]:
  storage = pathlib.Path(storage)
  try:  # pytest-benchmark keeps one folder per Python (its machine id), each with its own save counter
    from pytest_benchmark.utils import get_machine_id  # pylint: disable=import-outside-toplevel
    if (storage / get_machine_id()).is_dir():
      storage = storage / get_machine_id()
  except ImportError:
    pass
  base_runs, new_runs = _saved_runs(storage, baseline), _saved_runs(storage, current)
  if not base_runs:
    raise BenchError(f"no baseline '{baseline}' under {storage}: run `make bench` on this machine first")
  if not new_runs:
    raise BenchError(f"no current run '{current}' under {storage}")
  base_machine, new_machine = _machine_of(base_runs, "baseline"), _machine_of(new_runs, "current")
  if base_machine != new_machine:
    raise BenchError(f"baseline from machine {base_machine}, current run from {new_machine}: compare on one machine")
  base, new = pooled_rounds(base_runs), pooled_rounds(new_runs)
  return [Row(name, statistics.median(base[name]) if name in base else None,
              statistics.median(new[name]) if name in new else None,
              (len(base.get(name, [])), len(new.get(name, [])))) for name in sorted(set(base) | set(new))]


def format_rows(rows: Sequence[Row], max_slowdown: float) -> str:
  lines = [f"{'benchmark':70s} {'baseline s':>11s} {'current s':>11s} {'ratio':>6s}  verdict"]
  for row in rows:
    show = lambda s: "-" if s is None else f"{s:.4g}"  # noqa: E731
    ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
    verdict = ("new" if row.baseline_s is None else "gone" if row.current_s is None
               else "ok" if row.passed(max_slowdown) else f"SLOWER by {row.ratio - 1:.0%}")
    name = row.name if len(row.name) <= 70 else "…" + row.name[-69:]
    lines.append(f"{name:70s} {show(row.baseline_s):>11s} {show(row.current_s):>11s} {ratio:>6s}  {verdict}")
  slower = [r for r in rows if not r.passed(max_slowdown)]
  lines.append(f"{len(rows) - len(slower)}/{len(rows)} within {max_slowdown:.0%} of the baseline (median of the "
               f"rounds pooled over the passes)" + (f"; {len(slower)} slower -> FAIL" if slower else " -> PASS"))
  return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
  args = list(argv)
  if args[:1] == ["machine-id"] and len(args) == 1:
    print(machine_id())
    return 0
  if args[:1] != ["compare"]:
    raise BenchError("usage: python -m harness.benchcompare machine-id | compare --storage=DIR [--baseline=NAME] "
                     "[--current=NAME] [--max_slowdown=0.10]")
  options = {"storage": None, "baseline": "baseline", "current": "current", "max_slowdown": str(MAX_SLOWDOWN)}
  for arg in args[1:]:
    key, _, value = arg.lstrip("-").partition("=")
    if key not in options or not value:
      raise BenchError(f"unknown or empty option {arg!r} (options: {', '.join('--' + k for k in options)})")
    options[key] = value
  if not options["storage"]:
    raise BenchError("compare needs --storage=DIR")
  try:
    max_slowdown = float(options["max_slowdown"])
  except ValueError:
    raise BenchError(f"--max_slowdown must be a number, got {options['max_slowdown']!r}") from None
  rows = compare(options["storage"], options["baseline"], options["current"])
  print(format_rows(rows, max_slowdown))
  return 0 if all(r.passed(max_slowdown) for r in rows) else 1


if __name__ == "__main__":
  try:
    sys.exit(main(sys.argv[1:]))
  except BenchError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
