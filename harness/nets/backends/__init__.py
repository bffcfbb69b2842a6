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
  devices()               the devices kernel tiles are spread over (accelerators, else logical CPU devices)
  device_scope(device)    context placing work on one of them
  eager()                 context running compiled functions op by op (no tracing or XLA compilation)
"""
from __future__ import annotations

import importlib
from types import ModuleType

import keras

_MODULES = {"tensorflow": "harness.nets.backends.tensorflow", "jax": "harness.nets.backends.jax"}


def current() -> ModuleType:
  """The backend module for the active Keras backend."""
  name = keras.backend.backend()
  if name not in _MODULES:
    raise ValueError(f"harness.nets supports the Keras backends {sorted(_MODULES)}, not {name!r}")
  return importlib.import_module(_MODULES[name])
