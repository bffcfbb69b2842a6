"""The CLI as a user runs it (subprocess): list, run, compare, bless, report, and exit codes.

Exit status 0 = pass, 1 = a claim or reference failed, 2 = bad input with one line on stderr.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def harness(*args, mirrors=None):
  env = dict(os.environ, HARNESS_EXPERIMENT_MODULES="tests.harness.toy_experiment", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("HARNESS_MIRRORS", None)
  if mirrors:
    env["HARNESS_MIRRORS"] = mirrors
  return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


def assert_usage_error(result, *fragments):
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def blessed(tmp_path_factory):
  """A smoke run of the toy experiment, blessed into a fresh reference directory."""
  root = tmp_path_factory.mktemp("cli")
  run_dir, refs = str(root / "run1"), str(root / "refs")
  result = harness("run", "--experiment=toy", "--tier=smoke", f"--output_dir={run_dir}", "--quiet")
  assert result.returncode == 0, result.stderr
  result = harness("bless", run_dir, "--reason=first measured toy run", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  return root, run_dir, refs


def test_list_shows_experiments_and_tiers():
  result = harness("list")
  assert result.returncode == 0, result.stderr
  assert "toy:" in result.stdout and "tier smoke" in result.stdout and "tier small" in result.stdout
  assert "claim variance_is_one" in result.stdout


def test_run_record_and_compare_pass(blessed):
  root, run_dir, refs = blessed
  record = json.load(open(os.path.join(run_dir, "results.json")))
  assert record["metrics"]["mc_variance/normal"]["seeds"] == [0, 1, 2, 3, 4, 5]
  assert record["environment"]["cpu_cores"] >= 1 and "keras" in record["environment"]["versions"]
  assert all(c["passed"] for c in record["claims"])
  assert "sample" in record["phases"]
  ref = json.load(open(os.path.join(refs, "toy", "smoke.json")))
  assert {e["metric"] for e in ref["entries"]} == {"mc_variance/normal", "normal_quantile/p=0.975"}
  result = harness("compare", run_dir, f"--references={refs}")
  assert result.returncode == 0, result.stdout + result.stderr
  assert "metric" in result.stdout and "verdict" in result.stdout and "PASS" in result.stdout


def test_moved_metric_fails_compare(blessed):
  root, run_dir, refs = blessed
  for name, shift, claim_fails in (("normal_quantile/p=0.975", 1e-9, False), ("mc_variance/normal", 0.05, False),
                                   ("mc_variance/normal", 0.5, True)):
    moved = str(root / f"moved-{name.replace('/', '_')}-{shift}")
    shutil.copytree(run_dir, moved)
    path = os.path.join(moved, "results.json")
    record = json.load(open(path))
    record["metrics"][name]["values"] = [v + shift for v in record["metrics"][name]["values"]]
    json.dump(record, open(path, "w"))
    result = harness("compare", moved, f"--references={refs}")
    assert result.returncode == 1, result.stdout
    assert "FAIL" in result.stdout
  # a move well inside the seed spread passes
  inside = str(root / "inside")
  shutil.copytree(run_dir, inside)
  path = os.path.join(inside, "results.json")
  record = json.load(open(path))
  values = record["metrics"]["mc_variance/normal"]["values"]
  record["metrics"]["mc_variance/normal"]["values"] = [v + 0.1 * np.std(values) for v in values]
  json.dump(record, open(path, "w"))
  assert harness("compare", inside, f"--references={refs}").returncode == 0


def test_nan_metric_fails(blessed):
  root, run_dir, refs = blessed
  nan_dir = str(root / "nan")
  shutil.copytree(run_dir, nan_dir)
  path = os.path.join(nan_dir, "results.json")
  record = json.load(open(path))
  record["metrics"]["normal_quantile/p=0.975"]["values"] = ["nan"]
  json.dump(record, open(path, "w"))
  result = harness("compare", nan_dir, f"--references={refs}")
  assert result.returncode == 1 and "not finite" in result.stdout


def test_bad_inputs_exit_2(blessed, tmp_path):
  root, run_dir, refs = blessed
  assert_usage_error(harness("run", "--experiment=nope", "--tier=smoke"), "unknown experiment 'nope'")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=huge"), "no tier 'huge'")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=smoke", "--dtype=float16"), "dtype")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=smoke", "--seeds=0"), "seeds")
  assert_usage_error(harness("frobnicate"), "command must be one of")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=smoke", f"--output_dir={run_dir}"),
                     "already holds a run")
  assert_usage_error(harness("compare", str(tmp_path)), "did not finish")
  assert_usage_error(harness("compare", run_dir, f"--references={tmp_path}"), "reference file not found",
                     os.path.join(str(tmp_path), "toy", "smoke.json"))
  broken = tmp_path / "broken"
  (broken / "toy").mkdir(parents=True)
  blob = json.load(open(os.path.join(refs, "toy", "smoke.json")))
  del blob["entries"][0]["tolerance"]["alpha" if "alpha" in blob["entries"][0]["tolerance"] else "atol"]
  (broken / "toy" / "smoke.json").write_text(json.dumps(blob))
  assert_usage_error(harness("compare", run_dir, f"--references={broken}"), "smoke.json", "entries[0].tolerance")
  assert_usage_error(harness("bless", run_dir), "--reason")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=smoke", "--compare", f"--references={tmp_path}",
                             f"--output_dir={tmp_path / 'never'}"), "reference file not found")
  assert not (tmp_path / "never").exists()  # nothing ran


def test_dataset_errors_exit_2(tmp_path):
  # no mirror: the message says how to point at one; a corrupted shard fails its checksum
  assert_usage_error(harness("run", "--experiment=toy", "--tier=small", f"--output_dir={tmp_path / 'a'}"),
                     "HARNESS_MIRRORS")
  mirror = tmp_path / "mirror"
  mirror.mkdir()
  images = np.zeros((8, 32, 32, 3), np.uint8)
  np.savez(mirror / "train.npz", images=images, labels=np.arange(8, dtype=np.int64))
  np.savez(mirror / "test.npz", images=images[:2], labels=np.arange(2, dtype=np.int64))
  (mirror / "README.md").write_text("```\n" + "0" * 64 + "  train.npz\n" + "0" * 64 + "  test.npz\n```\n")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=small", f"--output_dir={tmp_path / 'b'}",
                             f"--mirrors=cifar10={mirror}"), "train.npz")


def test_report_single_and_multi(blessed, tmp_path):
  root, run_dir, refs = blessed
  result = harness("report", run_dir, run_dir, f"--report_dir={tmp_path / 'rep'}", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  text = (tmp_path / "rep" / "report.md").read_text()
  assert "Side by side" in text and "variance_is_one" in text and "mc_variance/normal" in text
  # claims and metrics are linked both ways: what each claim read, which claims read each metric
  claim_row = next(line for line in text.splitlines() if line.startswith("| variance_is_one"))
  assert "mc_variance/normal" in claim_row
  metric_rows = [line for line in text.splitlines() if line.startswith("| mc_variance/normal")]
  assert any("variance_is_one" in row for row in metric_rows), metric_rows
  assert (tmp_path / "rep" / "report.html").read_text().count("<table") >= 3
  assert any(p.suffix == ".png" for p in (tmp_path / "rep").iterdir())


def test_theory_writes_the_closed_form_entries_and_check_finds_stale_files(tmp_path):
  from harness import references
  refs = tmp_path / "refs"
  shutil.copytree(os.path.join(REPO, "reference_results", "commutativity"), refs / "commutativity")
  path = refs / "commutativity" / "smoke.json"
  blob = references.load(str(refs), "commutativity", "smoke")
  theory = [e for e in blob["entries"] if e["provenance"]["kind"] == "theory"]
  assert len(theory) == 16
  stale = dict(blob, entries=[e for e in blob["entries"] if e is not theory[0]])
  references.write(str(path), stale)
  result = harness("theory", "--check", f"--references={refs}")
  assert result.returncode == 1 and "smoke.json" in result.stdout, result.stdout + result.stderr
  result = harness("theory", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  assert references.load(str(refs), "commutativity", "smoke") == blob   # restored, nothing else touched
  assert harness("theory", "--check", f"--references={refs}").returncode == 0
