"""The backend-specific pieces of harness.nets, picked by `keras.backend.backend()`.

Everything else in harness.nets is written once with `keras.ops`; a backend module only supplies what Keras
does not abstract:

  compile(fn)             XLA-compile a function of tensors (tf.function(jit_compile=True) / jax.jit)
  to_tensor(array, dtype) a numpy array as a backend tensor; to_numpy(tensor) back (cheaper than keras.ops')
  kernel_precision()      context: full-precision float32 matmuls (TF32 off / jax matmul precision "highest")
  enable_float64()        make float64 tensors available (a no-op under TF; jax_enable_x64 under JAX)
  barrier(*tensors)       the tensors behind an XLA opt-barrier, so XLA does not simplify or fuse across it;
                          XLA:CPU may still fuse a cheap operand into its consumers (harness/nets/_kernel_math.py,
                          `conv_stencil`)
  has_accelerator()       whether kernels run on a GPU/TPU (then one call per block, no host threads)
  jacobian(fn, params, x) per-example Jacobians of fn(params, x) (b, k) w.r.t. each parameter (empirical NTK)
  train_step(loss_fn, update_fn, jit_compile)
                          a compiled training step step(params, state, non_trainable, x, y) -> (params, state,
                          non_trainable, loss): the gradient of loss_fn(params, non_trainable, x, y) -> (loss,
                          non_trainable) w.r.t. params, then update_fn(params, grads, state) -> (params, state)
                          (harness/online.py; tf.function with XLA or not / jax.jit with the state donated)
  hessian_vector_product(loss_fn, jit_compile)
                          a compiled hvp(params, vectors, *args) -> H v, H the Hessian of the scalar
                          loss_fn(params, *args) in params (harness/sharpness.py; XLA switchable under TF)
  seeded_normals(draws, dtype)
                          [keras.random.normal(shape, mean, stddev, dtype, seed=<int>) for each draw], the same
                          values, in one call (`harness.nets.reinitialize` redraws a whole net)
  devices()               the devices kernel tiles are spread over (accelerators, else logical CPU devices)
  device_scope(device)    context placing work on one of them
  distribution(kind)      context: Keras models built and trained in it are data-parallel over the devices `kind`
                          (STRATEGIES) names: tf.distribute strategies / keras.distribution.DataParallel; yields
                          those devices
  eager()                 context running compiled functions op by op (no tracing or XLA compilation)
  running_eagerly()       whether that context is active
  configure_process(env)  the process-wide settings of `configure_xla_cpu` that this backend needs
  enable_determinism(env) every op deterministic from here on (TF op determinism / XLA:GPU's deterministic ops);
                          deterministic() says whether it is on

XLA:CPU code should use 512-bit vectors where the CPU has them (`CPU_VECTOR_WIDTH`; XLA's default prefers 256):
a ReLU layer's angle loop is bound by latency, not arithmetic, so twice the entries per vector is nearly twice the
throughput of that loop (docs/performance.md). JAX programs get the width per program (`cpu_compiler_options`),
which changes nothing else in the process. TensorFlow has no per-program options: there the width goes into
XLA_FLAGS, which XLA reads once, at the process's first XLA compilation, and then applies to every XLA:CPU program
of the process. Importing harness.nets changes no process state: `configure_xla_cpu()` does that, when called
(the CLI's `run` and the speed benchmarks call it).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
from types import ModuleType

import keras

_MODULES = {"tensorflow": "harness.nets.backends.tensorflow", "jax": "harness.nets.backends.jax"}
CPU_VECTOR_WIDTH = 512
STRATEGIES = ("auto", "one_device", "mirrored", "tpu")   # --strategy (harness/runner.py)
_VECTOR_WIDTH_FLAG = "xla_cpu_prefer_vector_width"
# glibc malloc (`keep_freed_memory`): blocks of up to MALLOC_MMAP_THRESHOLD come from the heap (glibc's own ceiling for
# its adaptive threshold, 32 MiB), and up to MALLOC_TRIM_THRESHOLD of free heap is kept instead of returned to the OS.
MALLOC_MMAP_THRESHOLD = 2**25
MALLOC_TRIM_THRESHOLD = 2**30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>


def configure_xla_cpu(environ=None) -> None:
  """Process-wide settings for fast harness.nets kernels on XLA:CPU; idempotent, a no-op where none are needed.

  Under TensorFlow: adds --xla_cpu_prefer_vector_width=512 (CPU_VECTOR_WIDTH) to XLA_FLAGS (environ: os.environ),
  unless XLA_FLAGS sets a width already (that width wins: XLA_FLAGS=--xla_cpu_prefer_vector_width=256 keeps XLA's
  default). XLA reads XLA_FLAGS at the process's first XLA compilation, so call this before any, e.g. first thing
  in a script; it then applies to every XLA:CPU program of the process, not only harness.nets'. Also drops TF's
  warnings about deliberate choices (tensorflow.py `_DropKnownNoise`: retracing, pfor while-loop fallbacks).
  Under JAX: nothing to set (harness.nets' programs get the width per program).
  Under both, on glibc: freed memory kept for reuse (`keep_freed_memory`).
  """
  current().configure_process(os.environ if environ is None else environ)
  keep_freed_memory()


def keep_freed_memory() -> bool:
  """Has glibc's malloc keep freed memory for reuse (MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD); whether it
  could (False off glibc). Every kernel call allocates and frees buffers of megabytes (its outputs, the numpy
  copies, XLA's temporaries); by default glibc returns them to the OS, and each page then costs a page fault and
  zeroing when the next call touches it again: a third of an FC 1000 x 1000 block's time (docs/performance.md).
  The price: the process keeps up to MALLOC_TRIM_THRESHOLD of freed heap instead of returning it (its peak is
  unchanged). Process-wide, like the rest of `configure_xla_cpu`."""
  name = ctypes.util.find_library("c")
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl without mallopt)
    return False
  return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                  MALLOC_TRIM_THRESHOLD))


def prefer_cpu_vector_width(environ=os.environ) -> None:
  """Adds --xla_cpu_prefer_vector_width=CPU_VECTOR_WIDTH to environ's XLA_FLAGS unless it sets a width already."""
  flags = environ.get("XLA_FLAGS", "")
  if _VECTOR_WIDTH_FLAG not in flags:
    environ["XLA_FLAGS"] = f"{flags} --{_VECTOR_WIDTH_FLAG}={CPU_VECTOR_WIDTH}".strip()


DETERMINISTIC_XLA_FLAG = "--xla_gpu_deterministic_ops=true"


def add_xla_flag(flag: str, environ=os.environ) -> None:
  """Adds `flag` to environ's XLA_FLAGS (read when XLA starts: before any JAX computation or TF XLA compile)."""
  flags = environ.get("XLA_FLAGS", "")
  if flag not in flags.split():
    environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


def enable_determinism(environ=None) -> None:
  """Deterministic ops from here on, process-wide (`--deterministic`): run-to-run identical results on the same
  hardware and software, at some cost in speed on accelerators. Call it before the first computation: XLA:GPU
  reads the flag when it starts."""
  current().enable_determinism(os.environ if environ is None else environ)


def cpu_compiler_options() -> dict:
  """Per-program XLA options for backends that take them (JAX): the vector width, unless XLA_FLAGS sets one."""
  if _VECTOR_WIDTH_FLAG in os.environ.get("XLA_FLAGS", ""):
    return {}
  return {_VECTOR_WIDTH_FLAG: CPU_VECTOR_WIDTH}


def current() -> ModuleType:
  """The backend module for the active Keras backend."""
  name = keras.backend.backend()
  if name not in _MODULES:
    raise ValueError(f"harness.nets supports the Keras backends {sorted(_MODULES)}, not {name!r}")
  return importlib.import_module(_MODULES[name])

