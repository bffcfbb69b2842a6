"""Matmul throughput of this machine: the unit in which a runtime moves from one machine to another.

A tier's runtime is measured (a blessed run) or estimated on one hardware class; on another machine the
pre-flight and `harness plan` scale it by the ratio of matmul throughputs in the run's dtype (GFLOP/s, 2 n^3 FLOP
for an n x n product): `matmul_gflops`, one XLA-compiled `keras.ops.matmul` on the backend's default device (an
accelerator where there is one), for experiments whose math is Keras; `host_matmul_gflops`, numpy's matmul (its
BLAS threads on the host's cores), for experiments whose math is numpy (`preflight.Needs.compute`). The kernels' and the
trainings' inner loops are contractions over channels, pixels and examples, so this is a first-order proxy, not a
prediction: phases bound by memory bandwidth, compilation or Python overhead scale differently. Every run record
carries both figures (environment `matmul_gflops`, `host_matmul_gflops`), so a blessed run says how fast its machine
was.
"""
from __future__ import annotations

import functools
import time

SIZES = (1024, 2048, 4096, 8192)   # grown until one product takes MIN_CALL_S (an accelerator needs the larger)
MIN_CALL_S = 0.02
REPEATS = 5                        # the best of these calls is the figure (noise on a shared VM only slows calls)


@functools.lru_cache(maxsize=None)
def matmul_gflops(dtype: str) -> float:
  """Achieved GFLOP/s of an n x n matmul in `dtype` (cached per process; about 0.3 s on 2 CPU cores)."""
  import numpy as np
  from keras import ops

  from harness.nets import backends
  backend = backends.current()
  if dtype == "float64":
    backend.enable_float64()
  product = backend.compile(lambda a, b: ops.sum(ops.matmul(a, b)))
  best = float("inf")
  for size in SIZES:
    rng = np.random.default_rng(0)
    a = backend.to_tensor(rng.standard_normal((size, size)).astype(dtype), dtype)
    b = backend.to_tensor(rng.standard_normal((size, size)).astype(dtype), dtype)
    with backend.kernel_precision():  # no TF32: the throughput of the precision asked for
      backend.to_numpy(product(a, b))  # compile
      best = float("inf")
      for _ in range(REPEATS):
        start = time.perf_counter()
        backend.to_numpy(product(a, b))
        best = min(best, time.perf_counter() - start)
    if best >= MIN_CALL_S:
      break
  return 2.0 * size ** 3 / best / 1e9


@functools.lru_cache(maxsize=None)
def host_matmul_gflops(dtype: str) -> float:
  """Achieved GFLOP/s of numpy's n x n matmul in `dtype` on the host (cached per process)."""
  import numpy as np
  rng = np.random.default_rng(0)
  for size in SIZES:
    a, b = (rng.standard_normal((size, size)).astype(dtype) for _ in range(2))
    a @ b  # pylint: disable=pointless-statement  (threads start, pages fault in)
    best = float("inf")
    for _ in range(REPEATS):
      start = time.perf_counter()
      a @ b  # pylint: disable=pointless-statement
      best = min(best, time.perf_counter() - start)
    if best >= MIN_CALL_S:
      break
  return 2.0 * size ** 3 / best / 1e9
