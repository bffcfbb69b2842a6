"""JAX pieces of harness.nets (see harness/nets/backends/__init__.py)."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable

import jax
import jax.numpy as jnp
import keras
import numpy as np

from harness.nets import backends


def configure_process(environ) -> None:  # pylint: disable=unused-argument
  """`harness.nets.configure_xla_cpu` under JAX: no flag to set (the vector width goes to each program, `compile`);
  JAX's notice that the backends it probes are absent ("Unable to initialize backend 'tpu'", logged at INFO,
  which absl's handler prints) is dropped: nothing a user can act on."""
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def compile(fn: Callable) -> Callable:  # pylint: disable=redefined-builtin
  """XLA-compiled `fn` (jax.jit); on CPU with harness.nets.backends' vector width."""
  if jax.default_backend() != "cpu":
    return jax.jit(fn)
  return jax.jit(fn, compiler_options=backends.cpu_compiler_options())


def to_tensor(array, dtype: str):
  """A numpy array as a device array of `dtype`."""
  return jnp.asarray(array, dtype=dtype)


def to_numpy(tensor):
  return np.asarray(tensor)


def kernel_precision():
  """float32 matmuls in full precision while kernels are traced (the default TF32-like mode is off)."""
  return jax.default_matmul_precision("highest")


def barrier(*tensors) -> tuple:
  """The arrays behind XLA's opt-barrier (jax.lax.optimization_barrier; the identity outside jit): no optimization
  moves work across it (see the TensorFlow backend's `barrier` for what XLA:CPU still fuses)."""
  return tuple(jax.lax.optimization_barrier(tuple(tensors)))


def enable_float64() -> None:
  """float64 arrays need jax_enable_x64 (process-wide; float32 code is unaffected)."""
  if not jax.config.jax_enable_x64:
    jax.config.update("jax_enable_x64", True)


def enable_determinism(environ) -> None:
  """XLA:GPU's deterministic ops (XLA:CPU is deterministic already). XLA reads XLA_FLAGS when JAX starts its
  backends, so a process that has computed already cannot turn it on: that is an error, not a silent no-op."""
  if backends.DETERMINISTIC_XLA_FLAG in environ.get("XLA_FLAGS", "").split():
    return
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  if xla_bridge.backends_are_initialized():
    raise RuntimeError("JAX has started already: set XLA_FLAGS=--xla_gpu_deterministic_ops=true before it does "
                       "(the CLI's --deterministic does)")
  backends.add_xla_flag(backends.DETERMINISTIC_XLA_FLAG, environ)


def deterministic() -> bool:
  return backends.DETERMINISTIC_XLA_FLAG in os.environ.get("XLA_FLAGS", "").split()


def running_eagerly() -> bool:
  """Whether jitted functions run op by op (`eager()`)."""
  return bool(jax.config.jax_disable_jit)


def has_accelerator() -> bool:
  return jax.default_backend() != "cpu"


def jacobian(fn: Callable, params: list, x, per_example: bool = False) -> list:
  """d fn(params, x) / d params for a batch: one (batch, outputs, *param.shape) array per parameter.

  `per_example`: jax.vmap of jax.jacrev of fn on one input (the TensorFlow backend's docstring says when it pays);
  else jax.jacrev of the whole batch's outputs. Needs fn to treat examples independently, as the harness's nets do."""
  if not per_example:
    return jax.jacrev(fn, argnums=0)(params, x)
  one = lambda xi: [j[0] for j in jax.jacrev(fn, argnums=0)(params, xi[None])]
  return jax.vmap(one)(x)


def train_step(loss_fn: Callable, update_fn: Callable, jit_compile: bool = True) -> Callable:
  """step(params, state, non_trainable, x, y) -> (params, state, non_trainable, loss): jax.value_and_grad of
  loss_fn w.r.t. params, then update_fn, under jax.jit with params, state and non_trainable donated (the caller
  passes buffers it no longer needs); on CPU with harness.nets.backends' vector width. `jit_compile` is
  TensorFlow's switch: JAX always compiles with XLA."""
  del jit_compile
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def step(params, state, non_trainable, x, y):
    (loss, non_trainable), grads = grad_fn(params, non_trainable, x, y)
    params, state = update_fn(params, grads, state)
    return params, state, non_trainable, loss

  options = {} if jax.default_backend() != "cpu" else {"compiler_options": backends.cpu_compiler_options()}
  return jax.jit(step, donate_argnums=(0, 1, 2), **options)


def hessian_vector_product(loss_fn: Callable, jit_compile: bool = True) -> Callable:
  """hvp(params, vectors, *args) -> [H v per parameter], H the Hessian of loss_fn(params, *args) (a scalar) in
  params: forward-over-reverse (jax.jvp of jax.grad), under jax.jit (`jit_compile` is TensorFlow's switch)."""
  del jit_compile

  def hvp(params, vectors, *args):
    return jax.jvp(lambda p: jax.grad(loss_fn)(p, *args), (params,), (vectors,))[1]

  return compile(hvp)


def seeded_normals(draws, dtype: str) -> list:
  """[keras.random.normal(shape, mean, stddev, dtype, seed=seed) for (shape, mean, stddev, seed) in draws] itself:
  under JAX each draw is one cached jitted call already."""
  import keras  # pylint: disable=import-outside-toplevel
  return [keras.random.normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=int(seed))
          for shape, mean, stddev, seed in draws]


def devices() -> list:
  """Devices kernel tiles may go to: those of JAX's default backend (GPUs/TPUs, or the host CPU devices)."""
  return list(jax.devices())


@contextlib.contextmanager
def distribution(kind: str):
  """Context: Keras models built and trained inside it are data-parallel through `keras.distribution.DataParallel`
  (backends.STRATEGIES); yields the devices it spans. mirrored: every device of JAX's default backend; one_device:
  the first; tpu: every TPU (ValueError if none); auto: none (DataParallel needs every batch to split evenly over
  the devices, which a tier's batch sizes need not: ask for it with mirrored)."""
  found = list(jax.devices())
  if kind == "tpu" and found[0].platform != "tpu":
    raise ValueError(f"no TPU found (JAX's devices are {found[0].platform})")
  if kind == "one_device":
    chosen = found[:1]
  elif kind in ("mirrored", "tpu"):
    chosen = found
  else:
    yield found
    return
  previous = keras.distribution.distribution()
  keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
  try:
    yield chosen
  finally:
    keras.distribution.set_distribution(previous)


def device_scope(device):
  """Context running uncommitted arrays and jitted calls inside it on `device`."""
  return jax.default_device(device)


def eager():
  """Context: jitted functions (kernels, Jacobians) run op by op instead of being XLA-compiled."""
  return jax.disable_jit()
