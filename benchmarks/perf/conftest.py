"""Prints the kernel-throughput and online-training tables after `pytest benchmarks/perf` (see
test_kernel_throughput.py and test_online_throughput.py)."""
from benchmarks.perf import test_kernel_throughput as throughput
from benchmarks.perf import test_online_throughput as online_throughput
from benchmarks.perf import test_training_throughput as training_throughput
from harness import nets

nets.configure_xla_cpu()  # the settings `harness run` uses, before the first XLA compilation


def pytest_benchmark_update_machine_info(config, machine_info):  # pylint: disable=unused-argument
  """pytest-benchmark's machine record plus what moves the numbers: the machine class `make bench-compare`
  matches baselines by (harness.benchcompare.machine_id), accelerators, library versions, Keras backend, XLA
  and numerics switches (harness.environment)."""
  from harness import benchcompare, environment  # pylint: disable=import-outside-toplevel
  env = environment.fingerprint()
  machine_info[benchcompare.MACHINE_KEY] = benchcompare.machine_id(env)
  machine_info["harness_environment"] = {
      key: env.get(key) for key in ("cpu_model", "cpu_cores", "cpu_affinity", "memory_bytes", "accelerator_kind",
                                    "accelerator_count", "accelerator_names", "gpus_nvidia_smi", "cuda_version",
                                    "cudnn_version", "versions", "keras_backend", "tf32_enabled", "op_determinism",
                                    "xla_jit_auto", "tf_xla_flags", "onednn_opts", "git")}


def _format(value, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def pytest_terminal_summary(terminalreporter):
  _online_table(terminalreporter.write_line)
  _training_table(terminalreporter.write_line)
  rows = throughput.RESULTS
  if not rows:
    return
  write = terminalreporter.write_line
  write("")
  write("kernel throughput (steady state; entries = (x1_i, x2_j) pairs, NNGP+NTK together)")
  header = (f"{'case':18s} {'dtype':8s} {'entries/s':>12s} {'FLOP/entry':>11s} {'GFLOP/s':>9s} "
            f"{'first call s':>12s} {'NT entries/s':>12s} {'x NT':>7s}")
  write(header)
  write("-" * len(header))
  for row in rows:
    write(f"{row['case']:18s} {row['dtype']:8s} {row['entries_per_s']:12.2f} {_format(row['flops_per_entry'], '11.3g')} "
          f"{_format(row['gflops_per_s'], '9.2f')} {row['first_call_s']:12.2f} {_format(row['nt_entries_per_s'], '12.2f')} "
          f"{_format(row['ratio_to_nt'], '7.2f')}")
  records = sorted({row["nt_record"] for row in rows if row.get("nt_record")})
  write(f"NT figures: tools/nt_oracle/{{{', '.join(records) or 'no record of this host'}}}, measured on this host "
        "(neural-tangents kernels, float64, the faster of jax.jit and nt.batch where both were timed); "
        "empirical NTK rows: nt_empirical_baseline.json (best of NT's three empirical_ntk_fn implementations).")


def _table(write, title: str, header: str, lines) -> None:
  write("")
  write(title)
  write(header)
  write("-" * len(header))
  for line in lines:
    write(line)


def _training_table(write):
  rows = training_throughput.RESULTS
  if rows:
    _table(write, f"finite-net training throughput (steady state; harness.training vs compiled Keras fit, same model "
                  f"and data; target >= {training_throughput.TARGET_RATIO:g} x Keras)",
           f"{'case':22s} {'backend':10s} {'batch':>6s} {'harness steps/s':>15s} {'fit steps/s':>12s} {'ratio':>6s} "
           f"{'GFLOP/s':>8s}",
           [f"{row['case']:22s} {row['backend']:10s} {row['batch']:6d} {row['harness_steps_per_s']:15.1f} "
            f"{row['keras_fit_steps_per_s']:12.1f} {row['ratio']:6.2f} {row['gflops_per_s']:8.2f}" for row in rows])


def _online_table(write):
  rows = online_throughput.RESULTS
  if rows:
    _table(write, f"online training throughput (steady state; batch {online_throughput.BATCH}, muP MLP width "
                  f"{online_throughput.WIDTH} on 8x8x3; target >= {online_throughput.TARGET_RATIO:g} x Keras)",
           f"{'case':12s} {'backend':10s} {'jit':5s} {'online steps/s':>14s} {'keras steps/s':>13s} {'ratio':>6s} "
           f"{'online warm s':>13s} {'keras warm s':>12s}",
           [f"{row['case']:12s} {row['backend']:10s} {str(row['jit_compile']):5s} {row['online_steps_per_s']:14.1f} "
            f"{row['keras_steps_per_s']:13.1f} {row['ratio']:6.2f} {row['online_warmup_s']:13.2f} "
            f"{row['keras_warmup_s']:12.2f}" for row in rows])
