"""The CLI as a user runs it: list, run, compare, bless, report, and exit codes.

Exit status 0 = pass, 1 = a claim or reference failed, 2 = bad input with one line on stderr. The blessed toy run,
the deterministic and JAX-only runs, and one case of each kind of error go through a subprocess (`python -m
harness`, as a user types it); the other runs (the toy's --force and plain runs), error cases and commands (list,
plan, compare, theory, bless, report) go through the same parse and dispatch in this process (`harness_here`),
which spares each of them a TensorFlow import of several seconds.
"""
import contextlib
import dataclasses
import importlib
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


EXACT_MIRROR = os.path.join(os.path.dirname(REPO), "shared", "data", "cifar10-exact-subset")
needs_mirror = pytest.mark.skipif(not os.path.isdir(EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")


# `python -m harness` as on a machine without TensorFlow (the JAX-only install): every `import tensorflow` fails
WITHOUT_TENSORFLOW = """
import runpy, sys
class _NoTensorFlow:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "tensorflow":
      raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTensorFlow())
sys.argv = ["harness"] + sys.argv[1:]
runpy.run_module("harness", run_name="__main__", alter_sys=True)
"""


def harness(*args, mirrors=None, modules=("tests.harness.toy_experiment",), jax_only=False):
  env = dict(os.environ, HARNESS_EXPERIMENT_MODULES=",".join(modules), TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("HARNESS_MIRRORS", None)
  if mirrors:
    env["HARNESS_MIRRORS"] = mirrors
  if jax_only:
    env["KERAS_BACKEND"] = "jax"
  command = ["-c", WITHOUT_TENSORFLOW] if jax_only else ["-m", "harness"]
  return subprocess.run([sys.executable, *command, *args], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=300)


@dataclasses.dataclass
class Result:
  returncode: int
  stdout: str
  stderr: str


def harness_here(*args, mirrors=None, modules=("tests.harness.toy_experiment",)) -> Result:
  """`harness(*args)` in this process: harness.cli's flag parsing and dispatch as `python -m harness` runs them
  (absl's app.run around them adds nothing the tests read), stdout and stderr captured, the exit status from
  SystemExit; `modules`' experiments are registered for the call only."""
  from harness import cli, registry  # pylint: disable=import-outside-toplevel
  registry.load_all()
  extra = [importlib.import_module(m).EXPERIMENT for m in modules]
  stdout, stderr = io.StringIO(), io.StringIO()
  saved_mirrors = os.environ.pop("HARNESS_MIRRORS", None)
  if mirrors:
    os.environ["HARNESS_MIRRORS"] = mirrors
  for experiment in extra:
    registry.register(experiment)
  cli.FLAGS.unparse_flags()
  try:
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
      try:
        cli._main(cli._flags_parser(["harness", *args]))  # pylint: disable=protected-access
        code = 0
      except SystemExit as e:
        code = e.code
  finally:
    cli.FLAGS.unparse_flags()
    for experiment in extra:
      registry.unregister(experiment.name)
    os.environ.pop("HARNESS_MIRRORS", None)
    if saved_mirrors is not None:
      os.environ["HARNESS_MIRRORS"] = saved_mirrors
  return Result(code, stdout.getvalue(), stderr.getvalue())


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
  assert result.stderr == ""
  # --quiet: one line per phase and the summary
  assert result.stdout.splitlines()[0].startswith("[sample] done in ") and len(result.stdout.splitlines()) == 3
  assert json.load(open(os.path.join(run_dir, "results.json")))["deterministic"] is False
  result = harness_here("bless", run_dir, "--reason=first measured toy run", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  return root, run_dir, refs


def test_list_shows_experiments_and_tiers():
  result = harness_here("list")
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
    result = harness_here("compare", moved, f"--references={refs}")
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
  assert harness_here("compare", inside, f"--references={refs}").returncode == 0


def test_nan_metric_fails(blessed):
  root, run_dir, refs = blessed
  nan_dir = str(root / "nan")
  shutil.copytree(run_dir, nan_dir)
  path = os.path.join(nan_dir, "results.json")
  record = json.load(open(path))
  record["metrics"]["normal_quantile/p=0.975"]["values"] = ["nan"]
  json.dump(record, open(path, "w"))
  result = harness_here("compare", nan_dir, f"--references={refs}")
  assert result.returncode == 1 and "not finite" in result.stdout


def test_bad_inputs_exit_2(blessed, tmp_path):
  root, run_dir, refs = blessed
  assert_usage_error(harness_here("run", "--experiment=nope", "--tier=smoke"), "unknown experiment 'nope'")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=huge"), "no tier 'huge'")
  assert_usage_error(harness("run", "--experiment=toy", "--tier=smoke", "--dtype=float16"), "dtype")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--seeds=0"), "seeds")
  assert_usage_error(harness_here("frobnicate"), "command must be one of")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--engine=spark"), "--engine")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke",
                                  "--pipeline_options=--runner=DirectRunner"), "need --engine=beam")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--work_dir=gs://bucket/tiles"),
                     "remote storage needs --engine=beam")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--engine=beam",
                             "--pipeline_options=--runner=FlinkRunner --flink_master=host:8081"), "cluster runner")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--strategy=tpu",
                             f"--output_dir={tmp_path / 'tpu'}"), "--strategy=tpu: no TPU")
  assert not (tmp_path / "tpu").exists()
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", f"--output_dir={run_dir}"),
                     "already holds a run")
  assert_usage_error(harness_here("compare", str(tmp_path)), "did not finish")
  assert_usage_error(harness_here("compare", run_dir, f"--references={tmp_path}"), "reference file not found",
                     os.path.join(str(tmp_path), "toy", "smoke.json"))
  broken = tmp_path / "broken"
  (broken / "toy").mkdir(parents=True)
  blob = json.load(open(os.path.join(refs, "toy", "smoke.json")))
  del blob["entries"][0]["tolerance"]["alpha" if "alpha" in blob["entries"][0]["tolerance"] else "atol"]
  (broken / "toy" / "smoke.json").write_text(json.dumps(blob))
  assert_usage_error(harness_here("compare", run_dir, f"--references={broken}"), "smoke.json", "entries[0].tolerance")
  assert_usage_error(harness_here("bless", run_dir), "--reason")
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=smoke", "--compare", f"--references={tmp_path}",
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
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=small", f"--output_dir={tmp_path / 'b'}",
                                  f"--mirrors=cifar10={mirror}"), "train.npz")


def test_report_single_and_multi(blessed, tmp_path):
  root, run_dir, refs = blessed
  result = harness_here("report", run_dir, run_dir, f"--report_dir={tmp_path / 'rep'}", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  text = (tmp_path / "rep" / "report.md").read_text()
  assert "Hardware comparison: 2 runs" in text and "variance_is_one" in text and "mc_variance/normal" in text
  # claims and metrics are linked both ways: what each claim read, which claims read each metric
  claim_rows = [line for line in text.splitlines() if line.startswith("| variance_is_one")]
  assert any("mc_variance/normal" in row for row in claim_rows), claim_rows   # the run details' claims table
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
  result = harness_here("theory", "--check", f"--references={refs}")
  assert result.returncode == 1 and "smoke.json" in result.stdout, result.stdout + result.stderr
  result = harness_here("theory", f"--references={refs}")
  assert result.returncode == 0, result.stderr
  assert references.load(str(refs), "commutativity", "smoke") == blob   # restored, nothing else touched
  assert harness_here("theory", "--check", f"--references={refs}").returncode == 0


def test_plan_prints_every_experiment_and_tier():
  result = harness_here("plan", "--experiment=all", mirrors=f"cifar10={EXACT_MIRROR}")
  assert result.returncode == 0, result.stderr
  from harness import registry
  for name, experiment in registry.load_all().items():
    for tier in experiment.tiers:
      assert f"{name} / {tier.name}: sized for {tier.hardware}" in result.stdout, (name, tier.name)
  for column in ("this machine:", "runtime: about", "phase", "expected here", "memory: peak about",
                 "would stop the run"):
    assert column in result.stdout
  assert "toy / paper" in result.stdout and "needs 64 GPU/TPU" in result.stdout
  assert_usage_error(harness_here("plan", "--experiment=toy", "--tier=huge"), "no tier 'huge'")
  assert_usage_error(harness_here("plan"), "--experiment")


@needs_mirror
def test_the_paper_tier_on_a_cpu_machine_stops_before_any_work(tmp_path):
  """pooling's paper tier wants 50,000 training images and an accelerator host: with the 4,000-image mirror it stops
  in the pre-flight, with a one-line reason, no phase started and no run directory made."""
  out = tmp_path / "paper"
  result = harness_here("run", "--experiment=pooling", "--tier=paper", f"--output_dir={out}",
                        mirrors=f"cifar10={EXACT_MIRROR}", modules=())
  assert_usage_error(result, "pooling tier paper", "cifar10 train", "50000", "holds 4000")
  assert result.stdout == "" and not out.exists()
  forced = harness_here("run", "--experiment=pooling", "--tier=paper", f"--output_dir={out}", "--force",
                        mirrors=f"cifar10={EXACT_MIRROR}", modules=())
  assert_usage_error(forced, "holds 4000")   # --force cannot make data appear
  assert not out.exists()


def test_force_runs_past_hardware_and_memory_and_the_record_says_so(tmp_path):
  out = tmp_path / "forced"
  assert_usage_error(harness_here("run", "--experiment=toy", "--tier=paper", f"--output_dir={out}"),
                     "toy tier paper is sized for 64 GPUs", "needs 64 GPU/TPU", "expected runtime here", "--force")
  assert not out.exists()
  result = harness_here("run", "--experiment=toy", "--tier=paper", f"--output_dir={out}", "--force")
  assert result.returncode == 0, result.stderr
  assert "forced past the pre-flight: hardware: needs 64 GPU/TPU" in result.stdout
  record = json.load(open(out / "results.json"))
  assert record["forced"] is True
  assert [f.split(":")[0] for f in record["preflight"]["forced"]] == ["hardware", "hardware", "memory"]
  plain = json.load(open(harness_run_toy(tmp_path / "plain")))
  assert plain["forced"] is False and plain["preflight"]["forced"] == []


def harness_run_toy(out) -> str:
  result = harness_here("run", "--experiment=toy", "--tier=smoke", f"--output_dir={out}")
  assert result.returncode == 0, result.stderr
  # without --quiet: a line when each phase starts (with its expected time when a blessed run measured it), one when
  # it ends
  lines = result.stdout.splitlines()
  assert lines[0].startswith("[sample]") and not lines[0].startswith("[sample] done")
  assert lines[1].startswith("[sample] done in ")
  return os.path.join(out, "results.json")


def test_deterministic_runs_repeat_exactly(tmp_path):
  """--deterministic turns TF op determinism on and the record says so; two runs of the same seeds (commutativity's
  tiny tier: Keras nets, library kernels, the Monte Carlo) give identical metrics."""
  records = []
  for name in ("first", "second"):
    result = harness("run", "--experiment=commutativity_tiny", "--tier=smoke", f"--output_dir={tmp_path / name}",
                     "--deterministic", "--quiet", modules=("tests.benchmarks.tiny_commutativity",))
    assert result.returncode in (0, 1), result.stderr
    records.append(json.load(open(tmp_path / name / "results.json")))
  first, second = records
  assert first["deterministic"] is True and first["environment"]["op_determinism"] is True
  assert first["metrics"] and {k: m["values"] for k, m in first["metrics"].items()} == {
      k: m["values"] for k, m in second["metrics"].items()}


@needs_mirror
def test_every_experiment_runs_under_jax_without_tensorflow(tmp_path):
  """The JAX-only install: experiments (their tests' tiny tiers, the real code; one process) run from the mirror
  under KERAS_BACKEND=jax with every `import tensorflow` failing, write their records, keep stderr clean. pooling and
  width_consistency ran so too (WORKSPACE "Backends"); they are left out here for CI time: pooling's JAX kernels are
  tested by `make test-jax`, and so is the online trainer's write-back that width_consistency's JAX run exposed."""
  names = ("commutativity", "finite_vs_infinite")
  result = harness("run", f"--experiment={','.join(n + '_tiny' for n in names)}", "--tier=smoke",
                   f"--runs_dir={tmp_path}", "--quiet", mirrors=f"cifar10={EXACT_MIRROR}",
                   modules=tuple(f"tests.benchmarks.tiny_{n}" for n in names), jax_only=True)
  assert result.returncode in (0, 1), result.stderr   # claims of a tiny tier may fail; running is the test
  assert result.stderr == ""
  records = [json.load(open(path)) for path in sorted(tmp_path.glob("*/results.json"))]
  assert sorted(r["experiment"] for r in records) == [n + "_tiny" for n in names]
  assert all(r["environment"]["keras_backend"] == "jax" and r["metrics"] for r in records)


def test_without_tensorflow_tfds_is_a_one_line_error(tmp_path):
  """Without a mirror the toy's small tier needs TFDS, which needs TensorFlow: the pre-flight says so."""
  assert_usage_error(harness("run", "--experiment=toy", "--tier=small", f"--output_dir={tmp_path / 'run'}",
                             jax_only=True), "cifar10 train", "TensorFlow", "HARNESS_MIRRORS")
  assert not (tmp_path / "run").exists()
