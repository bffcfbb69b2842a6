"""Prints the kernel-throughput table after `pytest benchmarks/perf` (see test_kernel_throughput.py)."""
from benchmarks.perf import test_kernel_throughput as throughput
from harness import nets

nets.configure_xla_cpu()  # the settings `harness run` uses, before the first XLA compilation


def _format(value, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def pytest_terminal_summary(terminalreporter):
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
    write(f"{row['case']:18s} {row['dtype']:8s} {row['entries_per_s']:12.2f} {row['flops_per_entry']:11.3g} "
          f"{row['gflops_per_s']:9.2f} {row['first_call_s']:12.2f} {_format(row['nt_entries_per_s'], '12.2f')} "
          f"{_format(row['ratio_to_nt'], '7.2f')}")
  write("NT figures: tools/nt_oracle/nt_baseline.json (neural-tangents, float64, jax.jit, same machine).")
