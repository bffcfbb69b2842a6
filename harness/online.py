"""Online training of a Keras model: every step a fresh batch from a stream, per-variable learning rates (muP).

`train_online(model, stream, eval_x, eval_y, config, lr_multipliers)` takes step t's batch (x_t, y_t) as the
t-th item of `stream` (numpy arrays; each example is used once, so the loss on x_t before the update is an
unbiased estimate of the population loss), updates the model's trainable variables, and at the logged steps
scores the fixed evaluation set and keeps its outputs (float32, (n_eval, k)) for pointwise comparisons across
widths and seeds (Vyas et al. 2023, arXiv 2305.18411). The trainer draws no randomness and never reorders the
stream: the data order is the caller's (give every width and seed the same stream), the initialisation the
model's (e.g. `spec.keras_model(..., parameterization="mup", seed=s)`). Step t in a log means "after t updates"
(step 0: the initial model).

Losses (per batch B of examples, k outputs; the evaluation set is scored with the same definition):
  "mse":  L = 1 / (2 |B| k) * sum_{i in B, j} (f_j(x_i) - y_ij)^2, harness/training.py's normalisation (that of
          neural-tangents' `gradient_descent_mse`); targets y: (B, k) floats. Accuracy: argmax f == argmax y.
  "xent": softmax cross-entropy of the logits, mean over the batch, L = -1/|B| sum_i sum_j y_ij log softmax(f(x_i))_j.
          Labels either integer class indices (B,) (y_ij = [j == label_i]) or (B, k) rows of target
          probabilities (one-hot, or soft labels); "cross_entropy" (harness/training.py's name) is the same loss.
          Accuracy: argmax f == label (argmax y for (B, k) targets).

Optimizers, with m_i the learning-rate multiplier of variable i (1 for every variable without `lr_multipliers`):
  "sgd":  heavy-ball momentum (Polyak 1964): v <- mu v + g;  w <- w - lr m_i v  (mu = 0: plain SGD, no velocity).
          For a constant lr this is keras.optimizers.SGD(lr, momentum=mu) (v' = mu v' - lr g; w <- w + v').
  "adam": Kingma & Ba 2014 (arXiv 1412.6980), Algorithm 1: t <- t + 1; m <- b1 m + (1 - b1) g;
          v <- b2 v + (1 - b2) g^2; m^ = m / (1 - b1^t); v^ = v / (1 - b2^t); w <- w - lr m_i m^ / (sqrt(v^) + eps).
          (Keras' Adam puts eps outside the bias correction, eps * sqrt(1 - b2^t); the difference is O(eps).)
The multiplier scales the update, not the gradient: Adam's update is invariant to a gradient scale, so muP's Adam
rates (Yang & Hu 2021, "Tensor Programs IV", arXiv 2011.14522; Tensor Programs V, arXiv 2203.03466, Table 3) can
only be applied this way. `lr_multipliers` is {variable.path: m_i} as `harness.nets.mup_lr_multipliers(model,
base_width, optimizer)` returns it (the table in harness/nets/_parameterization.py); a dict that misses a
trainable variable of the model, or names one the model does not have, is an error (a multiplier dict of another
model or optimizer would otherwise train silently with rate 1).

The train step is one compiled function of (parameters, optimizer state, non-trainable state, x, y) built on
`model.stateless_call` (harness/nets/backends: `train_step`; TensorFlow: tf.function, XLA with
`config.jit_compile`; JAX: jax.jit with the state buffers donated). Parameters stay backend tensors between steps
and are written back into the model's variables when training ends (or stops). Evaluation runs a compiled forward
pass in batches of `config.eval_batch_size`. Both are kept on the model (`_compiled`): training the same model
again (its weights redrawn for another seed, `harness.nets.reinitialize`) with the same loss and optimizer reuses
them instead of compiling anew, at any learning rate and multipliers (the step sizes lr m_i are inputs of the step).

Divergence: the per-step training losses are read back at each logged step; a non-finite one (or non-finite
evaluation outputs) stops training there with `diverged=True` (the last log entry holds what was measured).
A stream that ends before `config.steps` raises `StreamExhausted` (before training when the stream reports a
length, `operator.length_hint`, that is too short).
"""
from __future__ import annotations

import dataclasses
import math
import operator
import time
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from harness.errors import HarnessError
from harness.nets import backends

LOSSES = ("mse", "xent")
LOSS_ALIASES = {"cross_entropy": "xent"}  # harness/training.py's name for the same loss
OPTIMIZERS = ("sgd", "adam")
ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON = 0.9, 0.999, 1e-8  # Kingma & Ba 2014, Sec. 2 ("good default settings")
EVAL_BATCH_SIZE = 1024
# TensorFlow: XLA-compile the train step (tf.function(jit_compile=True)); the benchmark
# benchmarks/perf/test_online_throughput.py measures both (docs/performance.md, "Online training throughput").
JIT_COMPILE = True


class StreamExhausted(HarnessError, ValueError):
  """The stream ended before the configured number of steps (bad input: e.g. a data mirror too small)."""


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
  steps: int
  learning_rate: float
  optimizer: str = "sgd"
  momentum: float = 0.0            # sgd: heavy-ball mu
  beta_1: float = ADAM_BETA_1      # adam
  beta_2: float = ADAM_BETA_2
  epsilon: float = ADAM_EPSILON
  loss: str = "mse"
  eval_batch_size: int = EVAL_BATCH_SIZE
  jit_compile: bool = JIT_COMPILE  # TensorFlow only (JAX always compiles with XLA)

  def __post_init__(self):
    object.__setattr__(self, "loss", LOSS_ALIASES.get(self.loss, self.loss))
    if self.loss not in LOSSES:
      raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
    if self.steps < 0 or not self.learning_rate > 0 or self.eval_batch_size < 1:
      raise ValueError(f"need steps >= 0, learning_rate > 0 and eval_batch_size >= 1, got {self}")
    if not 0 <= self.momentum < 1 or not 0 <= self.beta_1 < 1 or not 0 <= self.beta_2 < 1 or not self.epsilon > 0:
      raise ValueError(f"need 0 <= momentum, beta_1, beta_2 < 1 and epsilon > 0, got {self}")


@dataclasses.dataclass(frozen=True, eq=False)
class OnlineResult:
  """What `train_online` measured. Log entries are aligned with `steps` (step t: after t updates).

  train_loss[t] is the loss of batch t before update t + 1 (one value per step taken); predictions[t] the model's
  outputs on eval_x after t updates, float32 (n_eval, k)."""
  steps: tuple[int, ...]
  test_loss: tuple[float, ...]
  test_accuracy: tuple[float, ...]
  train_loss: np.ndarray
  predictions: dict[int, np.ndarray]
  steps_done: int
  diverged: bool
  train_s: float  # wall seconds of the update steps (with the first step's compilation), not the evaluations
  segment_s: tuple[float, ...] = ()  # per logged step, the seconds of the updates since the previous one

  def train_loss_at_logged_steps(self, window: int = 1) -> tuple[float, ...]:
    """Mean training loss of the `window` batches before each logged step (NaN at step 0)."""
    return tuple(float(np.mean(self.train_loss[max(0, t - window):t])) if t else math.nan for t in self.steps)


def log_steps_for(steps: int, log_steps: int | Iterable[int] | None) -> tuple[int, ...]:
  """The sorted logged steps: None -> (0, steps); an int k -> 0, k, 2k, ... and steps; else the given steps, each
  in [0, steps]."""
  if log_steps is None:
    return tuple(sorted({0, steps}))
  if isinstance(log_steps, (int, np.integer)):
    if log_steps < 1:
      raise ValueError(f"log_steps as an interval must be >= 1, got {log_steps}")
    return tuple(sorted(set(range(0, steps + 1, int(log_steps))) | {steps}))
  chosen = sorted({int(t) for t in log_steps})
  if not chosen or chosen[0] < 0 or chosen[-1] > steps:
    raise ValueError(f"log_steps must lie in [0, {steps}], got {list(log_steps)}")
  return tuple(chosen)


def check_multipliers(model: keras.Model, lr_multipliers: Mapping[str, float] | None) -> list[float]:
  """Per trainable variable (model order) its multiplier: 1 without a dict; with one, every trainable variable
  must be in it and every key must be a trainable variable of the model."""
  variables = model.trainable_variables
  if lr_multipliers is None:
    return [1.0] * len(variables)
  paths = [v.path for v in variables]
  missing = [p for p in paths if p not in lr_multipliers]
  if missing:
    raise ValueError(f"lr_multipliers has no multiplier for the trainable variable(s) {missing}")
  unknown = sorted(set(lr_multipliers) - set(paths))
  if unknown:
    raise ValueError(f"lr_multipliers names variable(s) {unknown} that are not trainable variables of "
                     f"{model.name}")
  values = [float(lr_multipliers[p]) for p in paths]
  bad = [p for p, m in zip(paths, values) if not (math.isfinite(m) and m >= 0)]
  if bad:
    raise ValueError(f"lr_multipliers must be finite and >= 0, not for {bad}")
  return values


def _compute_dtype(model: keras.Model) -> str:
  inputs = getattr(model, "inputs", None)
  if inputs:
    return keras.backend.standardize_dtype(inputs[0].dtype)
  return model.trainable_variables[0].dtype


def _loss_fn(model: keras.Model, loss: str):
  """loss(params, non_trainable, x, y) -> (scalar loss, new non-trainable values), on model.stateless_call."""

  def fn(params, non_trainable, x, y):
    f, non_trainable = model.stateless_call(params, non_trainable, x, training=True)
    return batch_loss(loss, f, y), non_trainable

  return fn


def batch_loss(loss: str, f, y):
  """The module docstring's loss of outputs f (B, k) against y, with keras.ops (a scalar tensor). Sums times
  Python-float normalisers, not ops.mean: Keras' JAX mean of float64 computes in float32 (Keras 3.15)."""
  batch, k = int(f.shape[0]), int(f.shape[-1])
  if loss == "mse":
    return ops.sum(ops.square(f - ops.cast(y, f.dtype))) * (0.5 / (batch * k))
  log_p = ops.log_softmax(f, axis=-1)
  if len(y.shape) == 1:
    y = ops.one_hot(ops.cast(y, "int32"), k, dtype=f.dtype)
  return ops.sum(ops.cast(y, f.dtype) * log_p) * (-1.0 / batch)


def numpy_scores(loss: str, f: np.ndarray, y: np.ndarray) -> tuple[float, float]:
  """(loss, accuracy) of outputs f (n, k) against y in float64 numpy, by the module docstring's definitions."""
  f = np.asarray(f, dtype=np.float64)
  y = np.asarray(y)
  labels = y if y.ndim == 1 else y.argmax(1)
  accuracy = float(np.mean(f.argmax(1) == labels))
  if loss == "mse":
    return float(0.5 * np.mean((f - y) ** 2)), accuracy
  shifted = f - f.max(1, keepdims=True)
  log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
  if y.ndim == 1:
    return float(-np.mean(log_p[np.arange(len(y)), y.astype(np.int64)])), accuracy
  return float(-np.mean((y * log_p).sum(1))), accuracy


def _const(value: float, dtype):
  """A Python float as a constant of `dtype`, rounded once (ops.cast would round it to float32 first)."""
  return ops.convert_to_tensor(value, dtype=dtype)


def _update_fn(config: OnlineConfig):
  """update(params, grads, state) -> (params, state) of the module docstring's optimizers, with keras.ops. The
  state's first item is the per-variable step sizes lr m_i (`_step_sizes`): inputs of the step, not constants in
  it, so one compiled step serves every learning rate and set of multipliers."""
  mu, b1, b2, eps = config.momentum, config.beta_1, config.beta_2, config.epsilon

  if config.optimizer == "sgd" and mu == 0:
    def sgd(params, grads, state):
      rates, = state
      return [w - r * g for w, g, r in zip(params, grads, rates)], state
    return sgd

  if config.optimizer == "sgd":
    def heavy_ball(params, grads, state):
      rates, velocity = state
      velocity = [_const(mu, v.dtype) * v + g for v, g in zip(velocity, grads)]
      return [w - r * v for w, v, r in zip(params, velocity, rates)], (rates, velocity)
    return heavy_ball

  def adam(params, grads, state):
    rates, t, first, second = state
    t = t + 1
    new_params, new_first, new_second = [], [], []
    for w, g, m1, m2, r in zip(params, grads, first, second, rates):
      dtype = w.dtype
      steps = ops.cast(t, dtype)
      m1 = _const(b1, dtype) * m1 + _const(1 - b1, dtype) * g
      m2 = _const(b2, dtype) * m2 + _const(1 - b2, dtype) * ops.square(g)
      m_hat = m1 / (1 - ops.power(_const(b1, dtype), steps))
      v_hat = m2 / (1 - ops.power(_const(b2, dtype), steps))
      new_params.append(w - r * m_hat / (ops.sqrt(v_hat) + _const(eps, dtype)))
      new_first.append(m1)
      new_second.append(m2)
    return new_params, (rates, t, new_first, new_second)
  return adam


def _step_sizes(config: OnlineConfig, multipliers: Sequence[float], params: list) -> list:
  """lr m_i per variable, each rounded once from the float64 product into its variable's dtype."""
  backend = backends.current()
  dtypes = [keras.backend.standardize_dtype(w.dtype) for w in params]
  return [backend.to_tensor(np.float64(config.learning_rate * m).astype(dtype), dtype)
          for dtype, m in zip(dtypes, multipliers)]


def _initial_state(config: OnlineConfig, params: list, rates: list):
  if config.optimizer == "sgd":
    return (rates, [ops.zeros_like(w) for w in params]) if config.momentum else (rates,)
  zeros = lambda: [ops.zeros_like(w) for w in params]  # noqa: E731
  return (rates, ops.convert_to_tensor(0, dtype="int32"), zeros(), zeros())


def _forward(model: keras.Model):
  backend = backends.current()
  return backend.compile(lambda params, non_trainable, x: model.stateless_call(params, non_trainable, x,
                                                                               training=False)[0])


# The attribute of a model that holds its compiled train steps and forward pass (set past Keras' attribute tracking).
_COMPILED_ATTRIBUTE = "_harness_online_compiled"


def _compiled(model: keras.Model, config: OnlineConfig) -> tuple[Callable, Callable]:
  """(train step, forward pass) of `model` for this loss and optimizer, compiled on its first training and kept on
  the model: they are functions of the weights and step sizes they are given, so they serve any weights of this
  model (a seed's redraw) and any learning rate or multipliers."""
  cache = getattr(model, _COMPILED_ATTRIBUTE, None)
  if cache is None:
    cache = {}
    object.__setattr__(model, _COMPILED_ATTRIBUTE, cache)
  # the step and the forward pass depend on neither the step count nor the rate (an input: `_update_fn`)
  settings = dataclasses.replace(config, steps=0, learning_rate=1.0)
  key = (backends.current().__name__, dataclasses.astuple(settings))
  if key not in cache:
    cache[key] = (backends.current().train_step(_loss_fn(model, config.loss), _update_fn(config),
                                                jit_compile=config.jit_compile),
                  _forward(model))
  return cache[key]


def _evaluate(forward, params, non_trainable, eval_x: np.ndarray, batch_size: int, dtype: str) -> np.ndarray:
  backend = backends.current()
  out = []
  for start in range(0, len(eval_x), batch_size):
    x = backend.to_tensor(eval_x[start:start + batch_size], dtype)
    with np.errstate(over="ignore"):  # a diverged float64 net's outputs become inf, which `log` reports
      out.append(np.asarray(backend.to_numpy(forward(params, non_trainable, x)), dtype=np.float32))
  return np.concatenate(out)


def _write_back(model: keras.Model, params: list, non_trainable: list, copy: bool = False) -> None:
  """The training state into the model's variables. `copy` while training goes on: under JAX a variable holds the
  array it is given, and Keras' own compiled calls on the model (an `on_log` that predicts) donate the variables'
  buffers, which would delete the arrays the next train step reads."""
  for variable, value in zip(model.trainable_variables, params):
    variable.assign(ops.copy(value) if copy else value)
  for variable, value in zip(model.non_trainable_variables, non_trainable):
    variable.assign(ops.copy(value) if copy else value)


def _target_dtype(loss: str, y: np.ndarray, dtype: str) -> str:
  return "int32" if loss == "xent" and np.asarray(y).ndim == 1 else dtype


def train_online(model: keras.Model, stream: Iterable[tuple[np.ndarray, np.ndarray]], eval_x: np.ndarray,
                 eval_y: np.ndarray, config: OnlineConfig, lr_multipliers: Mapping[str, float] | None = None,
                 log_steps: int | Iterable[int] | None = None,
                 on_log: Callable[[int, keras.Model], None] | None = None) -> OnlineResult:
  """Trains `model` in place for `config.steps` steps, one fresh batch of `stream` a step (module docstring).

  stream: an iterable of (x, y) numpy batches, x (B, *input_shape), y (B, k) targets or (B,) integer labels
  (xent), every batch of the same shapes; it is consumed, never reordered. eval_x, eval_y: the fixed evaluation
  set, scored (loss, accuracy) and its outputs kept at every logged step. lr_multipliers: {variable.path:
  multiplier} (harness.nets.mup_lr_multipliers) or None (1 for every variable). log_steps: None (0 and the last
  step), an interval, or the steps themselves. on_log(step, model): called at every logged step (after the
  evaluation) with the model's variables holding the weights of that step, e.g. to measure its sharpness
  (harness.sharpness); it must not change them.
  """
  multipliers = check_multipliers(model, lr_multipliers)
  logged = log_steps_for(config.steps, log_steps)
  hint = operator.length_hint(stream, -1)
  if 0 <= hint < config.steps:
    raise StreamExhausted(f"the stream holds {hint} batches, fewer than the {config.steps} steps to train")
  backend = backends.current()
  dtype = _compute_dtype(model)
  eval_x = np.asarray(eval_x, dtype=dtype)
  eval_y = np.asarray(eval_y)
  if len(eval_x) != len(eval_y) or len(eval_x) == 0:
    raise ValueError(f"eval_x and eval_y must hold the same number (> 0) of examples, got {len(eval_x)} and "
                     f"{len(eval_y)}")
  variables = model.trainable_variables
  params = [ops.copy(v.value) for v in variables]  # copies: JAX donates the step's input buffers
  non_trainable = [ops.copy(v.value) for v in model.non_trainable_variables]
  state = _initial_state(config, params, _step_sizes(config, multipliers, params))
  step_fn, forward = _compiled(model, config)
  iterator: Iterator = iter(stream)

  steps_out, test_loss, test_accuracy, predictions = [], [], [], {}
  losses: list[float] = []
  pending: list = []  # per-step losses still on the device (read back at the next logged step)
  first_shapes = None
  diverged, segments, t = False, [], 0

  def log(step: int) -> bool:
    """Scores the evaluation set; False when training has diverged."""
    f = _evaluate(forward, params, non_trainable, eval_x, config.eval_batch_size, dtype)
    loss, accuracy = numpy_scores(config.loss, f, eval_y)
    steps_out.append(step)
    test_loss.append(loss)
    test_accuracy.append(accuracy)
    predictions[step] = f
    if on_log is not None:
      _write_back(model, params, non_trainable, copy=True)
      on_log(step, model)
    return all(math.isfinite(v) for v in losses) and bool(np.all(np.isfinite(f)))

  try:
    for target in logged:
      start = time.perf_counter()
      while t < target:
        try:
          x, y = next(iterator)
        except StopIteration:
          raise StreamExhausted(f"the stream ended after {t} batches, before the {config.steps} steps to train "
                                f"(the model keeps the weights of step {t})") from None
        x, y = np.asarray(x), np.asarray(y)
        if first_shapes is None:
          first_shapes = (x.shape, y.shape)
        elif (x.shape, y.shape) != first_shapes:
          raise ValueError(f"batch {t} has shapes x {x.shape}, y {y.shape}; the first batch had x "
                           f"{first_shapes[0]}, y {first_shapes[1]} (every step takes equal batches)")
        params, state, non_trainable, loss = step_fn(
            params, state, non_trainable, backend.to_tensor(x, dtype),
            backend.to_tensor(y, _target_dtype(config.loss, y, dtype)))
        pending.append(loss)
        t += 1
      losses.extend(float(backend.to_numpy(l)) for l in pending)  # waits for the steps (JAX dispatches ahead)
      pending.clear()
      segments.append(time.perf_counter() - start)
      if not log(t):
        diverged = True
        break
  finally:
    _write_back(model, params, non_trainable)
  return OnlineResult(tuple(steps_out), tuple(test_loss), tuple(test_accuracy), np.asarray(losses, np.float64),
                      predictions, t, diverged, float(sum(segments)), tuple(segments))


__all__ = ["LOSSES", "OPTIMIZERS", "OnlineConfig", "OnlineResult", "StreamExhausted", "batch_loss",
           "check_multipliers", "log_steps_for", "numpy_scores", "train_online"]
