"""make bench / make bench-compare: pooled rounds, the 10% rule, machine matching, and the real thing end to end."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from harness import benchcompare

REPO = pathlib.Path(__file__).resolve().parents[2]
MACHINE = "intel-xeon-processor-2cpu"


def save(storage, counter, label, rounds_by_bench, machine=MACHINE):
  """A pytest-benchmark save: NNNN_<label>.json under the pytest-benchmark machine folder."""
  folder = storage / "Linux-CPython-3.11-64bit"
  folder.mkdir(parents=True, exist_ok=True)
  blob = {"machine_info": {benchcompare.MACHINE_KEY: machine},
          "benchmarks": [{"fullname": name, "stats": {"data": list(data)}} for name, data in rounds_by_bench.items()]}
  (folder / f"{counter:04d}_{label}.json").write_text(json.dumps(blob))


def test_median_of_rounds_pooled_over_passes_decides(tmp_path):
  save(tmp_path, 1, "baseline-pass1", {"a": [1.0, 1.0, 1.2], "b": [2.0, 2.0, 2.0]})
  save(tmp_path, 2, "baseline-pass2", {"a": [1.0, 0.9, 1.0], "b": [2.0, 2.1, 2.0]})
  save(tmp_path, 3, "current-pass1", {"a": [1.05, 3.0, 1.08], "b": [2.3, 2.3, 2.2]})   # one slow round in a
  save(tmp_path, 4, "current-pass2", {"a": [1.05, 1.09, 1.02], "b": [2.25, 2.3, 2.4]})
  rows = {r.name: r for r in benchcompare.compare(tmp_path)}
  assert rows["a"].baseline_s == 1.0 and rows["a"].current_s == pytest.approx(1.065) and rows["a"].rounds == (6, 6)
  assert rows["a"].passed(0.10)                       # 6.5% slower, the 3.0 round ignored by the median
  assert not rows["b"].passed(0.10) and rows["b"].ratio == pytest.approx(1.15)
  assert "SLOWER by 15%" in benchcompare.format_rows(list(rows.values()), 0.10)


def test_latest_run_only_and_new_or_gone_benchmarks_never_fail(tmp_path):
  save(tmp_path, 1, "baseline-pass1", {"a": [5.0]})
  save(tmp_path, 2, "baseline-pass2", {"a": [5.0]})
  save(tmp_path, 3, "baseline-pass3", {"a": [5.0]})   # an older bench with 3 passes
  save(tmp_path, 4, "baseline-pass1", {"a": [1.0], "gone": [1.0]})
  save(tmp_path, 5, "baseline-pass2", {"a": [1.0]})
  save(tmp_path, 6, "current-pass1", {"a": [1.05], "new": [9.0]})
  rows = {r.name: r for r in benchcompare.compare(tmp_path)}
  assert rows["a"].baseline_s == 1.0 and rows["a"].rounds == (2, 1)   # the stale pass3 is not pooled
  assert rows["new"].passed(0.1) and rows["gone"].passed(0.1)


@pytest.mark.parametrize("setup, message", [
    (lambda p: save(p, 1, "current-pass1", {"a": [1.0]}), "no baseline"),
    (lambda p: save(p, 1, "baseline-pass1", {"a": [1.0]}), "no current run"),
    (lambda p: (save(p, 1, "baseline-pass1", {"a": [1.0]}), save(p, 2, "current-pass1", {"a": [1.0]}, "other-8cpu")),
     "compare on one machine"),
    (lambda p: (save(p, 1, "baseline-pass1", {"a": []}), save(p, 2, "current-pass1", {"a": [1.0]})),
     "--benchmark-save-data"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, setup, message):
  setup(tmp_path)
  with pytest.raises(benchcompare.BenchError, match=message):
    benchcompare.compare(tmp_path)
  run = subprocess.run([sys.executable, "-m", "harness.benchcompare", "compare", f"--storage={tmp_path}"],
                       capture_output=True, text=True, cwd=REPO, check=False)
  assert run.returncode == 2 and run.stderr.count("\n") == 1 and message in run.stderr


def test_machine_id_names_the_machine_class():
  env = {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_cores": 16, "cpu_affinity": 2, "accelerator_count": 0}
  assert benchcompare.machine_id(env) == MACHINE
  gpu = dict(env, cpu_affinity=16, accelerator_count=1, accelerator_names=["NVIDIA H200"])
  assert benchcompare.machine_id(gpu) == "intel-xeon-processor-16cpu-1xnvidia-h200"


# -- end to end: the benchmark code, pytest-benchmark's storage, make bench-compare ---------------------------------
CASE = "test_kernel_throughput and fc and float64 and not depth2"  # the FC 3072-dim depth-10 case only (compiles fast)


def _bench(storage, label, env=None):
  command = [sys.executable, "-m", "pytest", "benchmarks/perf", "--benchmark-enable", "-p", "no:xdist", "-q",
             "--benchmark-save-data", f"--benchmark-storage=file://{storage}", f"--benchmark-save={label}", "-k", CASE]
  run = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})},
                       check=False)
  assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


@pytest.mark.serial
def test_make_bench_compare_passes_a_fresh_run_and_fails_a_slowed_kernel(tmp_path):
  """One pass saved as the baseline, and again as the current run: the comparison reads both saves, pools their
  rounds and passes (ratio 1); then `make bench-compare` with every kernel call slowed down twice, a real pass timed
  against that baseline, fails. Two real passes back to back drift by 7-15% on a 2-core VM, beside the rule's 10%:
  that drift is the benchmark protocol's business (several passes, docs/performance.md), not a test's."""
  _bench(tmp_path, "baseline-pass1")
  baseline = next(tmp_path.rglob("*_baseline-pass1.json"))
  number = int(baseline.name.split("_", 1)[0])
  shutil.copy(baseline, baseline.with_name(f"{number + 1:04d}_current-pass1.json"))
  fresh = subprocess.run([sys.executable, "-m", "harness.benchcompare", "compare", f"--storage={tmp_path}"],
                         capture_output=True, text=True, cwd=REPO, check=False)
  assert fresh.returncode == 0, fresh.stdout + fresh.stderr
  assert "1/1 within 10%" in fresh.stdout and " 1.000 " in fresh.stdout, fresh.stdout
  saved = json.loads(baseline.read_text())
  info = saved["benchmarks"][0]["extra_info"]
  assert info["flops_per_entry"] > 0 and info["gflops_per_s"] > 0
  assert saved["machine_info"][benchcompare.MACHINE_KEY] == benchcompare.machine_id()
  assert "versions" in saved["machine_info"]["harness_environment"]
  slowed = subprocess.run(["make", "bench-compare", f"BENCH_STORAGE={tmp_path}", "BENCH_PASSES=1",
                           f"PYTEST_ARGS=-k '{CASE}'", f"PY={sys.executable}"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "HARNESS_BENCH_SLOWDOWN": "2"},
                          check=False)
  assert slowed.returncode != 0 and "SLOWER by" in slowed.stdout, slowed.stdout[-3000:] + slowed.stderr[-2000:]
