"""Where a kernel benchmark case spends its time, per XLA fusion and per loop inside the hottest fusions.

    .venv/bin/python tools/hot_fusions.py --case=cnn_flatten            # ~1 min; needs perf, gdb, objdump
    .venv/bin/python tools/hot_fusions.py --case=cnn_gap --seconds=10 --loops=3

Runs the benchmark case (benchmarks/perf/test_kernel_throughput.py) in a child process that calls
`spec.kernel` in a loop with XLA_FLAGS=--xla_dump_to=<tmp dir> (XLA:CPU then writes each fusion's object file),
samples it with `perf record -e cpu-clock` (no hardware counters under KVM) and maps the sampled JIT addresses to
fusions: a JIT function starts on a page boundary, and its first instructions (read from the live process with
gdb) are matched against each dumped object file's (objdump). For the hottest fusions it then splits the samples
by loop (backward jumps in the object code) and prints each loop's instruction mix: instructions per iteration,
vector registers (ymm = 256-bit, zmm = 512-bit), square roots, fused multiply-adds, memory operands.

How it was used (2026-12-01, WORKSPACE.md "Measured throughput"): a ReLU layer's angle loop (one vector of
entries per iteration, a chain of ~12 dependent multiply-adds) was 43% of CNN-Flatten's time; the first layer's
NTK loop recomputed the input's per-channel products in scalar code (13%); the readouts' sums were scalar
reduce-window loops (5-6%).
"""
from __future__ import annotations

import collections
import glob
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string("case", "cnn_flatten", "A key of CASES in benchmarks/perf/test_kernel_throughput.py.")
flags.DEFINE_string("dtype", "float64", "Kernel dtype.")
flags.DEFINE_float("seconds", 8.0, "Seconds of sampling.")
flags.DEFINE_integer("top", 12, "Fusions to list.")
flags.DEFINE_integer("loops", 2, "Hottest fusions whose loops are listed.")
MATCH_INSTRUCTIONS = 60  # leading instructions compared to tell fusions apart
SAMPLE_HZ = 1000

_CHILD = """
import sys, time, numpy as np
sys.path.insert(0, {root!r})
from benchmarks.perf.test_kernel_throughput import CASES, network
from harness import nets
nets.configure_xla_cpu()  # as make bench and harness run (XLA_FLAGS' dump flag stays)
case = CASES[{case!r}]
rng = np.random.default_rng(0)
x1 = rng.standard_normal((case.block[0],) + case.input_shape)
x2 = rng.standard_normal((case.block[1],) + case.input_shape)
spec = network(case.architecture, case.depth)
spec.kernel(x1, x2, dtype={dtype!r})
print("READY", flush=True)
while True:
  spec.kernel(x1, x2, dtype={dtype!r})
"""


def _mnemonics(disassembly: str) -> list[str]:
  found = []
  for line in disassembly.splitlines():
    m = re.search(r":\s+([a-z][a-z0-9]*)\s", line + " ")
    if m:
      found.append(m.group(1))
  return found


def _objdump(path: str) -> str:
  return subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                        check=True).stdout


def _fusion_name(path: str) -> str:
  return re.sub(r".*obj-file\.", "", path).replace("_kernel_module.o", "").replace(".o", "")


def _loops(disassembly: str):
  """(start, end, instructions) of each loop: the span of a backward jump."""
  code = []
  for line in disassembly.splitlines():
    m = re.match(r"\s*([0-9a-f]+):\s*(.*)", line)
    if m:
      code.append((int(m.group(1), 16), m.group(2)))
  spans = set()
  for offset, text in code:
    m = re.match(r"j\w+\s+([0-9a-f]+)", text)
    if m and int(m.group(1), 16) < offset:
      spans.add((int(m.group(1), 16), offset))
  return [(a, b, [t for o, t in code if a <= o <= b]) for a, b in sorted(spans)]


def main(argv):
  del argv
  dump = tempfile.mkdtemp(prefix="hot_fusions_")
  env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump}".strip(),
             TF_CPP_MIN_LOG_LEVEL="2")
  child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT), case=FLAGS.case, dtype=FLAGS.dtype)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    while child.stdout.readline().strip() != "READY":
      if child.poll() is not None:
        raise SystemExit("the benchmark child exited before its first kernel call")
    time.sleep(1.0)
    data = os.path.join(dump, "perf.data")
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(SAMPLE_HZ), "-p", str(child.pid), "-o", data,
                    "--", "sleep", str(FLAGS.seconds)], check=True, capture_output=True)
    script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,dso"], capture_output=True, text=True).stdout
    samples = [line.split() for line in script.splitlines() if line.strip()]
    jit = [int(s[0], 16) for s in samples if len(s) > 1 and ("perf-" in s[1] or "[unknown]" in s[1])]
    print(f"{FLAGS.case} {FLAGS.dtype}: {len(samples)} samples, {100 * len(jit) / max(1, len(samples)):.1f}% in "
          "XLA-compiled code; shares below are of all samples")
    objects = {_fusion_name(p): p for p in glob.glob(os.path.join(dump, "*obj-file*"))}
    signatures = {name: _mnemonics(_objdump(p).split(">:", 1)[-1])[:MATCH_INSTRUCTIONS] for name, p in objects.items()}
    pages = collections.Counter(ip & ~0xFFF for ip in jit)
    hottest = []
    for base, count in pages.most_common(FLAGS.top):
      live = subprocess.run(["gdb", "-batch", "-p", str(child.pid), "-ex", f"x/{MATCH_INSTRUCTIONS}i {base}"],
                            capture_output=True, text=True).stdout
      code = _mnemonics(live)
      name = max(signatures, key=lambda n: sum(a == b for a, b in zip(signatures[n], code)), default="?")
      score = sum(a == b for a, b in zip(signatures.get(name, []), code))
      print(f"{100 * count / len(samples):6.1f}%  {name}  (first {len(code)} instructions: {score} match)")
      hottest.append((base, name))
    for base, name in hottest[:FLAGS.loops]:
      offsets = collections.Counter(ip - base for ip in jit if base <= ip < base + 0x10000)
      print(f"loops of {name} (an outer loop's share includes its inner loops):")
      for start, end, body in _loops(_objdump(objects[name])):
        share = 100 * sum(n for o, n in offsets.items() if start <= o <= end) / len(samples)
        if share >= 0.5:
          counts = {key: sum(key in t for t in body) for key in ("ymm", "zmm", "sqrt", "fmadd", "(%")}
          print(f"  {start:#06x}-{end:#06x} {share:5.1f}%  {len(body)} instructions, ymm {counts['ymm']}, zmm "
                f"{counts['zmm']}, sqrt {counts['sqrt']}, fma {counts['fmadd']}, memory operands {counts['(%']}")
  finally:
    child.kill()
  print(f"XLA dump (HLO after optimizations, object files): {dump}")


if __name__ == "__main__":
  app.run(main)
