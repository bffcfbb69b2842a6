"""`python -m harness COMMAND [flags]`: list | plan | run | compare | report | bless | theory.

  list                                           experiments, tiers, hardware, expected runtimes
  plan --experiment=X|all [--tier=T]             the pre-flight as a table, without running (harness/preflight.py)
  run --experiment=X|all --tier=T [--seeds=N] [--output_dir=D] [--dtype=float32|float64] [--compare] [--force]
      [--quiet] [--deterministic]                the pre-flight first: data, hardware, memory (exit 2 if they fail)
      [--engine=local|beam] [--pipeline_options="..."] [--work_dir=PATH]   where kernel tiles are computed
      [--strategy=auto|one_device|mirrored|tpu]  data-parallel Keras training over this host's devices
  compare RUN_DIR [RUN_DIR ...] [--references=DIR]
  report RUN_DIR [RUN_DIR ...] [--report_dir=D] [--baseline=RUN_DIR]
  bless RUN_DIR --reason="..." [--references=DIR]
  theory [--check] [--references=DIR]            write (or check) the theory-provenance reference entries

Exit status: 0 all good; 1 a claim or reference check failed; 2 bad input (one line on stderr).
"""
from __future__ import annotations

import os
import sys

from absl import app, flags

from harness.errors import HarnessError

COMMANDS = ("list", "plan", "run", "compare", "report", "bless", "theory")

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", None, "Experiment name, or 'all' (run).")
flags.DEFINE_string("tier", None, "Tier: smoke, small or paper (run; plan: default every tier).")
flags.DEFINE_integer("seeds", None, "Number of seeds 0..N-1, overriding the tier's seeds (run).", lower_bound=1)
flags.DEFINE_string("output_dir", None, "Run directory to create (run); must not hold a run. Default: runs/<id>.")
flags.DEFINE_string("runs_dir", "runs", "Parent of auto-named run directories (run).")
flags.DEFINE_enum("dtype", None, ["float32", "float64"], "Float precision; default: the tier's (run).")
flags.DEFINE_string("mirrors", None, "Offline dataset mirrors 'id=folder,...' (default: $HARNESS_MIRRORS).")
flags.DEFINE_bool("compare", False, "After running, compare with references (run).")
flags.DEFINE_string("references", None, "Reference directory (default: the repo's reference_results/).")
flags.DEFINE_string("reason", None, "Why these numbers become the reference (bless; required).")
flags.DEFINE_string("baseline", None, "report: the run (directory or run id) speed-ups are relative to (default: the "
                    "first).")
flags.DEFINE_string("report_dir", None, "Where report writes report.md/.html and figures (default: reports/<time>).")
flags.DEFINE_bool("quiet", False, "One line per phase and the summary: no progress bars (run).")
flags.DEFINE_bool("force", False, "Run although the tier's hardware or memory check fails; the record says so (run).")
flags.DEFINE_bool("deterministic", False, "Deterministic ops (TF op determinism, XLA:GPU deterministic ops): the same "
                  "seed gives identical numbers on the same machine, at some cost in speed (run).")
flags.DEFINE_enum("engine", "local", ["local", "beam"], "Where kernel matrices are computed (run): local (this process, "
                  "tiles over the local devices) or beam (an Apache Beam pipeline; harness/distributed).")
flags.DEFINE_string("pipeline_options", None, "Beam pipeline options with --engine=beam (default: the DirectRunner in "
                    "this process), e.g. '--runner=DataflowRunner --project=P --region=R "
                    "--temp_location=gs://B/tmp'.")
flags.DEFINE_string("work_dir", None, "Where finished kernel tiles are kept (run; any etils.epath path with "
                    "--engine=beam, e.g. gs://B/tiles): a rerun of a killed run resumes from them.")
flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "tpu"], "Data-parallel Keras models over "
                  "this host's devices (run): tf.distribute under TensorFlow, keras.distribution.DataParallel under JAX. "
                  "auto: mirrored over several accelerators, else one device; kernel tiles go to the same devices.")
flags.DEFINE_bool("check", False, "Only check that the reference files hold the theory entries; exit 1 if not (theory).")


class UsageError(HarnessError):
  pass


def _references_dir() -> str:
  from harness import references
  return FLAGS.references or references.DEFAULT_DIR


def _mirrors() -> str | None:
  return FLAGS.mirrors if FLAGS.mirrors is not None else os.environ.get("HARNESS_MIRRORS")


def _experiments() -> list:
  """The experiments --experiment names (comma-separated, or 'all'); HarnessError for an unknown one."""
  from harness import registry
  names = list(registry.load_all()) if FLAGS.experiment == "all" else FLAGS.experiment.split(",")
  return [registry.get(n) for n in names]


def cmd_list(args: list[str]) -> int:
  from harness import registry
  if args:
    raise UsageError(f"list takes no arguments, got {' '.join(args)}")
  experiments = registry.load_all()
  if not experiments:
    print("no experiments registered")
    return 0
  for exp in experiments.values():
    papers = ", ".join(f"arXiv {p.arxiv}" for p in exp.papers)
    print(f"{exp.name}: {exp.description} [{papers}]")
    for claim in exp.claims:
      print(f"    claim {claim.name}: {claim.statement}")
    for t in exp.tiers:
      print(f"  tier {t.name:<6} expected {t.expected_runtime_s:>6.0f} s on {t.hardware}")
  return 0


def cmd_run(args: list[str]) -> int:
  from harness import compare as compare_lib
  from harness import references, runner
  if args:
    raise UsageError(f"run takes flags only, got {' '.join(args)}")
  if not FLAGS.experiment or not FLAGS.tier:
    raise UsageError("run needs --experiment and --tier")
  experiments = _experiments()
  for exp in experiments:
    exp.tier(FLAGS.tier)  # fail on an unknown tier before any work (each run's pre-flight follows)
    if FLAGS.compare:
      references.load(_references_dir(), exp.name, FLAGS.tier)
  if FLAGS.output_dir and len(experiments) > 1:
    raise UsageError("--output_dir names one run; with several experiments use --runs_dir")
  from harness import distributed, nets, preflight
  try:
    engine = distributed.Engine(FLAGS.engine, FLAGS.pipeline_options, FLAGS.work_dir)
  except ValueError as e:
    raise UsageError(f"--engine: {e}") from None
  if FLAGS.deterministic:
    runner.enable_determinism()  # before anything computes: XLA reads its flags when it starts
  nets.configure_xla_cpu()  # XLA:CPU's vector width, before the first XLA program (the pre-flight's calibration)
  plans = [preflight.make_plan(exp, FLAGS.tier, n_seeds=FLAGS.seeds, dtype=FLAGS.dtype, mirrors=_mirrors(),
                               references_dir=_references_dir()) for exp in experiments]
  for plan in plans:  # every experiment's pre-flight before the first runs
    preflight.check(plan, FLAGS.force)
  results = []
  for exp, plan in zip(experiments, plans):
    run_dir, record = runner.run(exp.name, FLAGS.tier, n_seeds=FLAGS.seeds, dtype=FLAGS.dtype, plan=plan,
                                 output_dir=FLAGS.output_dir or runner.default_run_dir(exp.name, FLAGS.tier, FLAGS.runs_dir),
                                 mirrors=_mirrors(), verbose=True, progress=not FLAGS.quiet, force=FLAGS.force,
                                 references_dir=_references_dir(), deterministic=FLAGS.deterministic, engine=engine,
                                 strategy=FLAGS.strategy)
    if record["forced"]:
      print(f"forced past the pre-flight: {'; '.join(record['preflight']['forced'])}")
    print(f"wrote {os.path.join(run_dir, 'results.json')} ({record['wall_time_s']:.1f} s)")
    if FLAGS.compare:
      comparison = compare_lib.compare(record, _references_dir())
      print(compare_lib.format_comparison(comparison))
      results.append(comparison)
    else:
      from harness import claims as claims_lib
      failed = claims_lib.failures(record["claims"])
      print(f"claims: {claims_lib.count(record['claims'])} ok" + (f"; failed: {', '.join(failed)}" if failed else ""))
      results.append(not failed)
  if FLAGS.compare:
    print("\n" + compare_lib.summary_table(results))
    return 0 if all(c.passed for c in results) else 1
  return 0 if all(results) else 1


def cmd_plan(args: list[str]) -> int:
  """The pre-flight of each experiment and tier asked for, as tables; runs nothing (exit 0 even where a run
  would stop: the table says why)."""
  from harness import preflight, registry
  if args:
    raise UsageError(f"plan takes flags only, got {' '.join(args)}")
  if not FLAGS.experiment:
    raise UsageError("plan needs --experiment (a name, a comma-separated list, or 'all')")
  experiments = _experiments()
  pairs = [(exp, t.name) for exp in experiments for t in exp.tiers if FLAGS.tier in (None, t.name)]
  from harness import nets
  nets.configure_xla_cpu()  # the calibration's matmul runs at the vector width the kernels would
  for exp in experiments:
    if FLAGS.tier is not None:
      exp.tier(FLAGS.tier)
  tables = [preflight.format_plan(preflight.make_plan(exp, tier, n_seeds=FLAGS.seeds, dtype=FLAGS.dtype,
                                                      mirrors=_mirrors(), references_dir=_references_dir()))
            for exp, tier in pairs]
  print("\n\n".join(tables))
  return 0


def cmd_compare(args: list[str]) -> int:
  from harness import compare as compare_lib
  from harness import records
  if not args:
    raise UsageError("compare needs at least one RUN_DIR")
  record_list = [records.load(d) for d in args]
  comparisons = [compare_lib.compare(r, _references_dir()) for r in record_list]
  for c in comparisons:
    print(compare_lib.format_comparison(c) + "\n")
  if len(comparisons) > 1:
    print(compare_lib.summary_table(comparisons))
  return 0 if all(c.passed for c in comparisons) else 1


def cmd_report(args: list[str]) -> int:
  from harness import records
  from harness.report import write_report
  if not args:
    raise UsageError("report needs at least one RUN_DIR")
  record_list = [records.load(d) for d in args]
  baseline = FLAGS.baseline
  if baseline is not None and os.path.isdir(baseline):   # a run directory: its run id
    real = [os.path.realpath(d) for d in args]
    if os.path.realpath(baseline) not in real:
      raise UsageError(f"--baseline={baseline} is not one of the report's run directories")
    baseline = record_list[real.index(os.path.realpath(baseline))]["run_id"]
  out_dir = FLAGS.report_dir or os.path.join("reports", records.new_run_id("report", str(len(args))))
  path = write_report(record_list, out_dir, references_dir=_references_dir(), baseline=baseline)
  print(f"wrote {path}")
  return 0


def cmd_bless(args: list[str]) -> int:
  from harness import records, references, registry
  if len(args) != 1:
    raise UsageError("bless needs exactly one RUN_DIR")
  if not FLAGS.reason or not FLAGS.reason.strip():
    raise UsageError('bless needs --reason="why these numbers become the reference"')
  record = records.load(args[0])
  experiment = registry.get(record["experiment"])
  ref_dir = _references_dir()
  path = references.reference_path(ref_dir, record["experiment"], record["tier"])
  current = (references.load(ref_dir, record["experiment"], record["tier"]) if os.path.exists(path)
             else references.empty(record["experiment"], record["tier"]))
  metrics = records.metrics_of(record)
  new, blessed, skipped = references.bless(current, record, metrics, FLAGS.reason.strip(),
                                           lambda name: experiment.rule_for(name, metrics), records.utc_now())
  new = _with_theory_entries(experiment, record["tier"], new)
  references.validate(new, path, record["experiment"], record["tier"])
  references.write(path, new)
  print(f"wrote {path}: blessed {len(blessed)} metric(s) from run {record['run_id']}")
  for line in references.bless_diff(current, new, run_metrics=record["metrics"]):
    print(f"  {line}")
  for item in skipped:
    print(f"  not blessed: {item}")
  return 0


def _with_theory_entries(experiment, tier: str, blob: dict) -> dict:
  """The reference blob with the experiment's theory entries for `tier` in place (replacing same-named ones)."""
  from harness import references
  if experiment.theory_references is None:
    return blob
  return references.with_entries(blob, experiment.theory_references(experiment.tier(tier).config()))


def _with_derived_rules(experiment, tier: str, blob: dict) -> dict:
  """Theory entries, and each measured entry's `rounding` as its family derives it from the blessed values."""
  from harness import references
  new, unresolved = references.with_rounding(_with_theory_entries(experiment, tier, blob), experiment.rule_for)
  for item in unresolved:
    print(f"{experiment.name}/{tier}: rounding bound not derivable from the file, kept: {item}", file=sys.stderr)
  return new


def cmd_theory(args: list[str]) -> int:
  """Writes the derived parts of every reference file: each experiment's theory entries and the rounding bounds
  of measured entries (or, with --check, compares)."""
  from harness import references, registry
  if args:
    raise UsageError(f"theory takes flags only, got {' '.join(args)}")
  ref_dir, stale = _references_dir(), []
  for experiment in registry.load_all().values():
    for t in experiment.tiers:
      path = references.reference_path(ref_dir, experiment.name, t.name)
      if not os.path.exists(path):
        continue
      current = references.load(ref_dir, experiment.name, t.name)
      new = _with_derived_rules(experiment, t.name, current)
      references.validate(new, path, experiment.name, t.name)
      if new == current:
        continue
      stale.append(path)
      if not FLAGS.check:
        references.write(path, new)
        print(f"wrote {path}: theory entries and rounding bounds of {experiment.name}/{t.name}")
  if FLAGS.check:
    print("theory entries and rounding bounds up to date" if not stale
          else "theory entries or rounding bounds missing or different in: " + ", ".join(stale))
    return 1 if stale else 0
  return 0


def main(argv: list[str]) -> int:
  args = argv[1:]
  if not args or args[0] not in COMMANDS:
    raise UsageError(f"command must be one of {', '.join(COMMANDS)}" + (f", got {args[0]!r}" if args else ""))
  handler = {"list": cmd_list, "plan": cmd_plan, "run": cmd_run, "compare": cmd_compare, "report": cmd_report, "bless": cmd_bless,
             "theory": cmd_theory}[args[0]]
  return handler(args[1:])


def _is_user_error(error: BaseException) -> bool:
  return isinstance(error, HarnessError)  # harness.data.DataError is one too


def _flags_parser(argv: list[str]) -> list[str]:
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}".splitlines()[0], file=sys.stderr)
    sys.exit(2)


def _main(argv: list[str]) -> None:
  try:
    code = main(argv)
  except Exception as e:  # pylint: disable=broad-except
    if not _is_user_error(e):
      raise
    print(f"error: {e}".splitlines()[0], file=sys.stderr)
    sys.exit(2)
  sys.exit(code)


def run_cli() -> None:
  app.run(_main, flags_parser=_flags_parser)
