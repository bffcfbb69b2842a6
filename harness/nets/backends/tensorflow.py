"""TensorFlow pieces of harness.nets (see harness/nets/backends/__init__.py)."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Callable

import tensorflow as tf
from tensorflow.compiler.tf2xla.ops import gen_xla_ops

from harness.nets import backends

_TF32_LOCK = threading.Lock()


class _DropKnownNoise(logging.Filter):
  """Drops TF log warnings that report a deliberate choice, which a user can do nothing about:
  - "triggered tf.function retracing": harness.nets makes one tf.function per (spec, shapes, dtype) and caches it
    (harness/nets/_evaluate.py), so each traces once; the warning counts all of them together.
  - "<op> uses a while_loop. Fix that!": pfor (tape.jacobian) has no vectorized rule for some ops (the filter
    gradient of a convolution); the per-example Jacobians of conv nets then loop, which is correct, only slower."""

  NOISE = ("triggered tf.function retracing", "uses a while_loop. Fix that!")

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(noise in message for noise in self.NOISE)


_NOISE_FILTER = _DropKnownNoise()
_TF32_USERS = 0
_TF32_SAVED = None


def configure_process(environ) -> None:
  """`harness.nets.configure_xla_cpu` under TensorFlow: the vector width in XLA_FLAGS (TensorFlow has no
  per-program XLA options) and TF's logger without the warnings of `_DropKnownNoise` (idempotent)."""
  backends.prefer_cpu_vector_width(environ)
  tf.get_logger().addFilter(_NOISE_FILTER)  # a filter already there is not added twice


def compile(fn: Callable) -> Callable:  # pylint: disable=redefined-builtin
  """XLA-compiled `fn` (retraced per input shape/dtype, like jax.jit).

  Under `eager()` tf.function calls `fn` itself, where AutoGraph is not off: `tf.map_fn` (keras.ops.map) would
  convert its body and everything it calls, down to importlib's internals, warning on each ("AutoGraph could not
  transform <function _gcd_import>"). `do_not_convert` turns AutoGraph off for the call in both modes."""
  return _Compiled(tf.function(tf.autograph.experimental.do_not_convert(fn), jit_compile=True, autograph=False))


class _Compiled:
  """A tf.function called through its concrete function per input signature when every argument is a tensor: a
  tf.function call spends about as long matching its arguments to a trace as a small kernel block computes."""

  def __init__(self, function):
    self._function = function
    self._concrete = {}

  def __call__(self, *args):
    if running_eagerly() or not all(isinstance(a, tf.Tensor) for a in args):
      return self._function(*args)  # `eager()` runs it op by op; nested arguments go through the tf.function
    key = tuple((tuple(a.shape), a.dtype) for a in args)
    concrete = self._concrete.get(key)
    if concrete is None:
      concrete = self._concrete.setdefault(key, self._function.get_concrete_function(*args))
    return concrete(*args)


def to_tensor(array, dtype: str):
  """A numpy array as a tensor of `dtype` (tf.convert_to_tensor: keras.ops' adds a fixed cost a call)."""
  return tf.convert_to_tensor(array, dtype=dtype)


def to_numpy(tensor):
  return tensor.numpy()


@contextlib.contextmanager
def kernel_precision():
  """TF32 off while kernels are traced and run (a process-wide TF switch, so reference counted)."""
  global _TF32_USERS, _TF32_SAVED
  with _TF32_LOCK:
    if _TF32_USERS == 0:
      _TF32_SAVED = tf.config.experimental.tensor_float_32_execution_enabled()
      tf.config.experimental.enable_tensor_float_32_execution(False)
    _TF32_USERS += 1
  try:
    yield
  finally:
    with _TF32_LOCK:
      _TF32_USERS -= 1
      if _TF32_USERS == 0:
        tf.config.experimental.enable_tensor_float_32_execution(_TF32_SAVED)


def barrier(*tensors) -> tuple:
  """The tensors behind XLA's opt-barrier: no optimization moves work across it. XLA:CPU (TF 2.21) still fused a
  cheap single operand (a Conv's partial sum) into its consumers; a nonlinearity's stacked NNGP and NTK stay one
  loop (without barriers FC and CNN-Flatten are much slower: docs/performance.md). Run op by op (`eager()`), the
  identity."""
  if tf.executing_eagerly():
    return tensors
  return tuple(gen_xla_ops.xla_optimization_barrier(list(tensors)))


def enable_float64() -> None:
  """TensorFlow always has float64."""


def enable_determinism(environ) -> None:
  """TF op determinism (deterministic kernels, or an error where an op has none) and XLA:GPU's deterministic ops
  for the XLA-compiled kernels."""
  backends.add_xla_flag(backends.DETERMINISTIC_XLA_FLAG, environ)
  tf.config.experimental.enable_op_determinism()


def deterministic() -> bool:
  """Whether TF op determinism is on (no public getter in TF 2.21: the private one, else the environment variable
  that also turns it on)."""
  try:
    from tensorflow.python.framework import config as tf_config  # pylint: disable=import-outside-toplevel
    return bool(tf_config.is_op_determinism_enabled())
  except (ImportError, AttributeError):
    return os.environ.get("TF_DETERMINISTIC_OPS", "") in ("1", "true", "True")


def running_eagerly() -> bool:
  """Whether compiled functions run op by op (`eager()`)."""
  return tf.config.functions_run_eagerly()


def has_accelerator() -> bool:
  return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def jacobian(fn: Callable, params: list, x, per_example: bool = False) -> list:
  """d fn(params, x) / d params for a batch: one (batch, outputs, *param.shape) tensor per parameter.

  By default the Jacobian of the whole batch's outputs, vectorised with pfor (`GradientTape.jacobian`) inside the
  compiled function. `per_example`: fn applied to one input at a time, vectorised over the batch: the whole-batch
  Jacobian runs every output's backward pass through the entire batch, which dominates for small dense nets (FC
  3x512, 32 inputs: 40x faster per example; CNN-GAP 128 channels on 8x8, 32x32 block: 1.2x, and 9x under JAX;
  docs/performance.md). Needs fn to treat examples independently, as the harness's nets do.
  """
  if not per_example:
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      y = fn(params, x)
    return tape.jacobian(y, params, experimental_use_pfor=True)

  def one(xi):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      y = fn(params, xi[None])[0]
    return tape.jacobian(y, params, experimental_use_pfor=True)

  return tf.vectorized_map(one, x)


def train_step(loss_fn: Callable, update_fn: Callable, jit_compile: bool = True) -> Callable:
  """step(params, state, non_trainable, x, y) -> (params, state, non_trainable, loss), one tf.function
  (XLA-compiled when `jit_compile`): the tape's gradient of loss_fn w.r.t. params (tensors, not variables: the
  step is a pure function of its inputs, as under JAX), then update_fn. Called through its concrete function on
  the flattened arguments (`_Compiled`'s reason: a tf.function call's argument matching costs about as much as
  a small step)."""

  def step(params, state, non_trainable, x, y):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(params)
      loss, non_trainable = loss_fn(params, non_trainable, x, y)
    grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    params, state = update_fn(params, grads, state)
    return params, state, non_trainable, loss

  return _FlatStep(step, jit_compile)


class _FlatStep:
  """A tf.function of nested tensor arguments, called as a concrete function of the flat list of them."""

  def __init__(self, step: Callable, jit_compile: bool):
    self._step = step
    self._jit_compile = jit_compile
    self._concrete = {}

  def __call__(self, *args):
    if running_eagerly():
      return self._step(*args)
    flat = tf.nest.flatten(args)
    # one trace per (argument counts, shapes, dtypes): the structure of a train step's arguments is fixed
    key = (tuple(len(tf.nest.flatten(a)) for a in args), tuple((tuple(a.shape), a.dtype) for a in flat))
    entry = self._concrete.get(key)
    if entry is None:
      structure = args
      out_structure = []

      def flat_step(*flat_args):
        out = self._step(*tf.nest.pack_sequence_as(structure, list(flat_args)))
        out_structure.append(out)
        return tf.nest.flatten(out)

      function = tf.function(flat_step, jit_compile=self._jit_compile, autograph=False)
      concrete = function.get_concrete_function(*flat)
      entry = self._concrete.setdefault(key, (concrete, out_structure[0]))
    concrete, out_structure = entry
    return tf.nest.pack_sequence_as(out_structure, concrete(*flat))


def hessian_vector_product(loss_fn: Callable, jit_compile: bool = True) -> Callable:
  """hvp(params, vectors, *args) -> [H v per parameter], H the Hessian of loss_fn(params, *args) (a scalar) in
  params: the gradient of <grad loss, v> (Pearlmutter 1994, back-over-back), one tf.function (XLA-compiled when
  `jit_compile`)."""

  def hvp(params, vectors, *args):
    with tf.GradientTape(watch_accessed_variables=False) as outer:
      outer.watch(params)
      with tf.GradientTape(watch_accessed_variables=False) as inner:
        inner.watch(params)
        loss = loss_fn(params, *args)
      grads = inner.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
      dot = tf.add_n([tf.reduce_sum(g * tf.stop_gradient(v)) for g, v in zip(grads, vectors)])
    return outer.gradient(dot, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)

  return _FlatStep(hvp, jit_compile=jit_compile)


_SEEDED_NORMALS: dict = {}
_SEEDED_NORMALS_LOCK = threading.Lock()
_INT32_MAX = 2**31 - 1


def seeded_normals(draws, dtype: str) -> list:
  """[keras.random.normal(shape, mean, stddev, dtype, seed=seed) for (shape, mean, stddev, seed) in draws] for int
  seeds, the same values: Keras's TF backend draws tf.random.stateless_normal with the stateless seed
  [seed mod (2^31 - 2), 0] (its `_cast_seed`). One graph per list of shapes and dtype, the seeds and moments its
  inputs: Keras's own call runs about ten eager ops per draw, about 1 ms, which dominated redrawing a deep net's
  weights (tests/nets/test_backends.py pins the equality)."""
  shapes = tuple(tuple(int(n) for n in shape) for shape, *_ in draws)
  key = (shapes, dtype)
  with _SEEDED_NORMALS_LOCK:
    fn = _SEEDED_NORMALS.get(key)
    if fn is None:
      def draw(seeds, means, stddevs):
        return [tf.random.stateless_normal(shape=shape, mean=means[i], stddev=stddevs[i], dtype=dtype, seed=seeds[i])
                for i, shape in enumerate(shapes)]
      spec = (tf.TensorSpec((len(shapes), 2), tf.int32), tf.TensorSpec((len(shapes),), dtype),
              tf.TensorSpec((len(shapes),), dtype))
      fn = _SEEDED_NORMALS[key] = tf.function(draw, autograph=False).get_concrete_function(*spec)
  seeds = tf.constant([[int(seed) % (_INT32_MAX - 1), 0] for *_, seed in draws], dtype=tf.int32)
  means = tf.constant([mean for _, mean, _, _ in draws], dtype=dtype)
  stddevs = tf.constant([stddev for _, _, stddev, _ in draws], dtype=dtype)
  return list(fn(seeds, means, stddevs))


def devices() -> list[str]:
  """Logical devices kernel tiles may go to: every GPU/TPU, else every logical CPU device."""
  for kind in ("GPU", "TPU", "CPU"):
    found = tf.config.list_logical_devices(kind)
    if found:
      return [d.name for d in found]
  return []


@contextlib.contextmanager
def distribution(kind: str):
  """Context: Keras models built and trained (fit, train_on_batch, predict) inside it are data-parallel through
  tf.distribute (backends.STRATEGIES); yields the devices it spans (kernel tiles go to them). auto: mirrored over
  the GPUs when there are several, else no strategy; mirrored: every logical device of the first kind found (GPU,
  TPU, CPU); one_device: the first; tpu: TPUStrategy on the TPU the cluster resolver finds (ValueError if none)."""
  if kind == "tpu":
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as e:
      raise ValueError(f"no TPU found ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    strategy = tf.distribute.TPUStrategy(resolver)
  elif kind == "mirrored" or (kind == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
    strategy = tf.distribute.MirroredStrategy(devices())
  elif kind == "one_device":
    strategy = tf.distribute.OneDeviceStrategy(devices()[0])
  else:
    yield devices()
    return
  with strategy.scope():
    yield list(strategy.extended.worker_devices)


def device_scope(device: str):
  """Context placing the ops created and run inside it on `device`."""
  return tf.device(device)


@contextlib.contextmanager
def eager():
  """Context: compiled functions (kernels, Jacobians) run op by op instead of being traced and XLA-compiled."""
  previous = tf.config.functions_run_eagerly()
  tf.config.run_functions_eagerly(True)
  try:
    yield
  finally:
    tf.config.run_functions_eagerly(previous)
