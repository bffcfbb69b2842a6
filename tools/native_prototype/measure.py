"""Times tools/native_prototype/gap.c (what a native one-loop-per-layer kernel would reach on CNN-GAP 8x8) and checks
it against the harness's kernel on the same pairs.

    python3 tools/native_prototype/measure.py --depths=2,10      # builds with gcc -O3 -march=native (AVX-512 needed)

Prints microseconds of one core per pair and the ideal two-core entries/s (no threading overhead counted), and the
largest relative difference from `spec.kernel` (harness/nets) on a block whose diagonal holds the prototype's pairs.
"""
import ctypes
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
flags.DEFINE_list("depths", ["2", "10"], "Conv + ReLU layers, each at least 1.")
flags.register_validator("depths", lambda ds: all(d.isdigit() and int(d) >= 1 for d in ds), "depths: integers >= 1")
flags.DEFINE_integer("pairs", 16, "Pairs per call (the P of gap.c, its vector lanes x 2).")
flags.DEFINE_float("seconds", 2.0, "Timed seconds per depth.")
flags.DEFINE_bool("check", True, "Compare with the harness's kernel (needs the project's venv).")
H, C, W_VAR, B_VAR = 8, 3, 2.0, 0.01  # the benchmark nets: W_std = sqrt(2), b_std = 0.1


def build(pairs: int) -> ctypes.CDLL:
  library = pathlib.Path(tempfile.mkdtemp()) / "libgap.so"
  subprocess.run(["gcc", "-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", f"-DP={pairs}",
                  str(pathlib.Path(__file__).with_name("gap.c")), "-o", str(library), "-lm"], check=True)
  lib = ctypes.CDLL(str(library))
  lib.gap_chunk.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int, ctypes.c_double, ctypes.c_double] + [ctypes.c_void_p] * 6
  return lib


def main(argv):
  del argv
  sys.path.insert(0, str(ROOT))  # the harness, for --check
  lib = build(FLAGS.pairs)
  p = FLAGS.pairs
  rng = np.random.default_rng(0)
  x1, x2 = rng.standard_normal((p, H, H, C)), rng.standard_normal((p, H, H, C))
  lanes1, lanes2 = (np.ascontiguousarray(x.transpose(1, 2, 3, 0)) for x in (x1, x2))  # pairs last
  buffers = [np.zeros((H + 2)**4 * p) for _ in range(4)]  # zero borders, once
  nngp, ntk = np.zeros(p), np.zeros(p)
  pointer = lambda a: a.ctypes.data_as(ctypes.c_void_p)
  for depth in (int(d) for d in FLAGS.depths):
    def call():
      lib.gap_chunk(pointer(lanes1), pointer(lanes2), depth, W_VAR, B_VAR, *map(pointer, buffers), pointer(nngp),
                    pointer(ntk))
    call()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < FLAGS.seconds:
      call()
      calls += 1
    seconds = (time.perf_counter() - start) / calls
    line = f"depth {depth}: {seconds / p * 1e6:.2f} us a pair on one core, {2 * p / seconds:,.0f} entries/s on two (ideal)"
    if FLAGS.check:
      from benchmarks.perf import test_kernel_throughput as throughput  # pylint: disable=import-outside-toplevel
      out = throughput.network("gap", depth).kernel(x1, x2, get=("nngp", "ntk"), dtype="float64")
      worst = max(float(np.max(np.abs(mine - np.diagonal(out[g]).ravel()) / np.abs(np.diagonal(out[g]).ravel())))
                  for g, mine in (("nngp", nngp), ("ntk", ntk)))
      line += f"; largest relative difference from the harness {worst:.1e}"
    print(line, flush=True)


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  app.run(main)
