"""SGD training of a Keras model on MSE or cross-entropy, deterministic given the model and the seed.

Losses (per batch B of examples, k outputs):
  "mse":           L = 1 / (2 |B| k) * sum_{i in B, j} (f_j(x_i) - y_ij)^2, the normalisation of neural-tangents'
                   `predict.gradient_descent_mse` (and harness.nets.predict), so full-batch SGD with learning
                   rate eta follows the infinite-width gradient flow of Lee et al. 2019 (arXiv 1902.06720)
                   at time t = eta * steps when the net is wide and eta small.
  "cross_entropy": softmax cross-entropy of the logits against the labels argmax(y), mean over the batch.
Plain SGD (optionally with momentum and decoupled weight decay) via keras.optimizers.SGD; the only randomness is the order of the
examples, drawn per epoch from numpy's default_rng(seed), so a run is repeatable given the model's initial
weights (set those with the model's own seed). Steps go through `model.train_on_batch` (compiled once);
the loss is computed in the model's input dtype (Keras keeps the learning rate itself in float32).
Evaluation: accuracy = mean(argmax f(x) == argmax y); MSE = mean over examples and outputs of (f - y)^2
(without the 1/2), the same definition as for kernel predictions in the experiments.

Centering (`center=True`): the trained predictor is f_t(x) - f_0(x), the change of the net since
initialisation. Its gradients are those of f_t, so this is training f_t on the targets y + f_0(x_train) and
evaluating f_t - f_0. It removes the random initial function, whose O(1) output variance in the NTK
parameterisation otherwise dominates the argmax on test points ("centered and ensembled finite networks have
reduced posterior variance and behave more similarly to infinite networks", Lee et al. 2020, arXiv 2007.15801);
in the kernel regime f_t - f_0 is the NTK's gradient-descent mean predictor (Lee et al. 2019, arXiv 1902.06720).
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from harness.nets import empirical

LOSSES = ("mse", "cross_entropy")
EVAL_BATCH_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  learning_rate: float
  epochs: int
  batch_size: int | None = None  # None: full batch (gradient descent)
  loss: str = "mse"
  momentum: float = 0.0
  seed: int = 0
  center: bool = False  # train and evaluate f_t - f_0 (module docstring)
  eval_every: int = 0   # with validation data: score every this many epochs and keep the best (0: only at the end)
  weight_decay: float = 0.0  # decoupled: every step w <- w - learning_rate * weight_decay * w (Keras SGD)

  def __post_init__(self):
    if self.loss not in LOSSES:
      raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
    if (self.learning_rate <= 0 or self.epochs < 0 or (self.batch_size is not None and self.batch_size < 1)
        or self.eval_every < 0 or self.weight_decay < 0):
      raise ValueError(f"bad training config {self}")


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """Scores after training; `losses` holds the mean training loss of every epoch (the loss being optimised)."""
  train_accuracy: float
  train_mse: float
  test_accuracy: float
  test_mse: float
  losses: tuple[float, ...]
  steps: int
  diverged: bool
  epoch: int = 0                           # the epoch whose scores these are (the best validation one, or last)
  validation_accuracy: float = math.nan    # at that epoch, when validation data was given
  validation_curve: tuple[tuple[int, float], ...] = ()  # (epoch, validation accuracy) at every check


class HalfMeanSquaredError(keras.losses.Loss):
  """1/2 * mean over the batch and outputs of (y_pred - y_true)^2 (NT's MSE normalisation)."""

  def call(self, y_true, y_pred):
    return 0.5 * keras.ops.mean(keras.ops.square(y_pred - y_true), axis=-1)


def _loss(name: str, dtype: str) -> keras.losses.Loss:
  """The loss in the model's dtype (Keras losses otherwise compute in floatx, float32 by default)."""
  if name == "mse":
    return HalfMeanSquaredError(name="half_mse", dtype=dtype)
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)


def _compute_dtype(model: keras.Model) -> str:
  """The dtype of the model's input (a functional model's Input), else its dtype policy's compute dtype."""
  inputs = getattr(model, "inputs", None)
  if inputs:
    return keras.backend.standardize_dtype(inputs[0].dtype)
  policy = getattr(model, "dtype_policy", None)
  return getattr(policy, "compute_dtype", None) or keras.backend.floatx()


def data_parallel_devices() -> int:
  """The devices every batch is split over under `keras.distribution` (JAX's --strategy, which needs batches that
  divide evenly); 1 without one (tf.distribute splits uneven batches itself)."""
  dist = keras.distribution.distribution()
  return 1 if dist is None else int(np.prod(dist.device_mesh.shape))


def outputs(model: keras.Model, x: np.ndarray) -> np.ndarray:
  """The model's outputs on x (float64), in batches (padded by repeating the last row to split evenly over
  `data_parallel_devices()`, the padding's outputs dropped)."""
  x = np.asarray(x, dtype=_compute_dtype(model))
  devices, n = data_parallel_devices(), len(x)
  if n % devices:
    x = np.concatenate([x, np.repeat(x[-1:], devices - n % devices, axis=0)])
  batch = EVAL_BATCH_SIZE - EVAL_BATCH_SIZE % devices
  return np.asarray(model.predict(x, batch_size=batch, verbose=0), dtype=np.float64)[:n]


def scores(model: keras.Model, x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None) -> tuple[float, float]:
  """(accuracy, mse) of the model's outputs minus `offset` (e.g. f_0(x), or None) against targets y (n, k)."""
  out = outputs(model, x)
  if offset is not None:
    out = out - offset
  y = np.asarray(y, dtype=np.float64)
  if not np.all(np.isfinite(out)):
    return math.nan, math.nan
  return float(np.mean(out.argmax(1) == y.argmax(1))), float(np.mean((out - y) ** 2))


def train(model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          config: TrainConfig, verbose: bool = True, x_val: np.ndarray | None = None,
          y_val: np.ndarray | None = None) -> TrainResult:
  """Trains `model` in place with SGD for `config.epochs` epochs; returns train/test accuracy and MSE.

  y_train / y_test: (n, k) targets (for MSE, e.g. centered one-hot); cross-entropy uses argmax(y) as labels.
  With validation data (x_val, y_val: held out from the training data, never the test set) and
  config.eval_every = E, the net is scored every E epochs and the result holds the train/test scores of the
  check with the best validation accuracy (early stopping chosen on validation data only; the first best on
  ties). A non-finite loss stops training and marks the result `diverged` (its scores are then NaN).
  """
  dtype = _compute_dtype(model)
  x_train = np.asarray(x_train, dtype=dtype)
  y_train = np.asarray(y_train)
  if config.center and config.loss != "mse":
    raise ValueError("center=True needs the mse loss (cross-entropy has no additive target to shift)")
  validate = x_val is not None and config.eval_every > 0
  if (x_val is None) != (y_val is None):
    raise ValueError("give both x_val and y_val, or neither")
  f0_train = outputs(model, x_train) if config.center else None
  f0_test = outputs(model, x_test) if config.center else None
  f0_val = outputs(model, x_val) if config.center and validate else None
  if config.loss == "mse":
    targets = (y_train if f0_train is None else y_train + f0_train).astype(dtype)
  else:
    targets = y_train.argmax(1).astype(np.int32)
  n = len(x_train)
  batch = n if config.batch_size is None else min(config.batch_size, n)
  if batch % data_parallel_devices():
    raise ValueError(f"a batch of {batch} examples does not split evenly over {data_parallel_devices()} devices "
                     "(keras.distribution.DataParallel, --strategy): choose a batch size they divide")
  model.compile(optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum,
                                               weight_decay=config.weight_decay or None),
                loss=_loss(config.loss, dtype))
  rng = np.random.default_rng(config.seed)
  progbar = keras.utils.Progbar(config.epochs, verbose=1 if verbose else 0, unit_name="epoch")
  losses, steps, diverged = [], 0, False
  best, curve = None, []

  def check(epoch: int):
    val_accuracy = scores(model, x_val, y_val, f0_val)[0]
    curve.append((epoch, val_accuracy))
    return val_accuracy, epoch, scores(model, x_train, y_train, f0_train), scores(model, x_test, y_test, f0_test)

  for epoch in range(config.epochs):
    xs, ts = x_train, targets
    if batch < n:  # one gather per epoch; each batch is then a contiguous view (the same batches as before)
      order = rng.permutation(n)
      xs, ts = x_train[order], targets[order]
    epoch_losses = []
    for start in range(0, n - batch + 1, batch):  # drop the last partial batch: equal-size steps
      loss = float(np.asarray(model.train_on_batch(xs[start:start + batch], ts[start:start + batch])).reshape(-1)[0])
      steps += 1
      epoch_losses.append(loss)
      if not math.isfinite(loss):
        diverged = True
        break
    losses.append(float(np.mean(epoch_losses)))
    progbar.update(epoch + 1, values=[("loss", losses[-1])])
    if diverged:
      break
    if validate and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
      scored = check(epoch + 1)
      if best is None or scored[0] > best[0]:
        best = scored
  if diverged:
    return TrainResult(math.nan, math.nan, math.nan, math.nan, tuple(losses), steps, True, len(losses),
                       validation_curve=tuple(curve))
  if best is None:
    val_accuracy = scores(model, x_val, y_val, f0_val)[0] if x_val is not None else math.nan
    best = (val_accuracy, config.epochs, scores(model, x_train, y_train, f0_train),
            scores(model, x_test, y_test, f0_test))
  val_accuracy, epoch, (train_accuracy, train_mse), (test_accuracy, test_mse) = best
  return TrainResult(train_accuracy, train_mse, test_accuracy, test_mse, tuple(losses), steps, False, epoch,
                     val_accuracy, tuple(curve))


# -- full-batch gradient descent with one compiled step per model structure ---------------------------------------
def _xla_for(model: keras.Model) -> bool:
  """Whether the step goes through XLA under TensorFlow: not for convolutional nets on a CPU host, where TF's
  oneDNN convolutions beat XLA:CPU's (pooling's CNN-GAP at batch 1024: 540 vs 725 ms a step; Keras' own `fit`
  resolves jit_compile='auto' to False there too). JAX always compiles."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  convolutional = any("conv" in type(layer).__name__.lower() for layer in model.layers)
  return not (convolutional and not backends.current().has_accelerator())


def _build_gradient_descent_step(model: keras.Model):
  """The step of this model's structure (shared by nets of one spec and width built with other seeds):
  params <- params - lr (grad L + wd params), L = 1/(2 N k) |f - y|^2, with lr and wd as tensors in the state;
  XLA-compiled except where `_xla_for` says otherwise."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel

  def loss_fn(params, non_trainable, x, y):
    f, non_trainable = model.stateless_call(params, non_trainable, x, training=True)
    n, k = int(f.shape[0]), int(f.shape[-1])
    return keras.ops.sum(keras.ops.square(f - y)) * (0.5 / (n * k)), non_trainable

  def update_fn(params, grads, state):
    rate, decay = state
    return [p - rate * (g + decay * p) for p, g in zip(params, grads)], state

  return backends.current().train_step(loss_fn, update_fn, jit_compile=_xla_for(model))


_gradient_descent_step = empirical.StructureCache(_build_gradient_descent_step)


def gradient_descent(model: keras.Model, x: np.ndarray, y: np.ndarray, learning_rate: float, steps: int,
                     weight_decay: float = 0.0) -> tuple[float, ...]:
  """`steps` full-batch gradient-descent steps on the half MSE 1/(2 N k) |f(x) - y|^2 (the normalisation of
  `train` and of harness.nets.predict), in place; weight decay decoupled as in `train` (w <- w - lr wd w - lr grad).

  The same trajectory as `train(..., TrainConfig(learning_rate, epochs=steps))` (full batch) up to rounding, but
  through one compiled step per model structure (nets of one spec and width built with other seeds, or the same
  net reset to its initial weights, reuse it) instead of a Keras train function compiled for every model.
  Returns the loss before each step; a non-finite loss raises FloatingPointError.
  """
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  if learning_rate <= 0 or steps < 0 or weight_decay < 0:
    raise ValueError(f"bad gradient descent: learning_rate {learning_rate}, steps {steps}, weight_decay {weight_decay}")
  backend = backends.current()
  dtype = _compute_dtype(model)
  step = _gradient_descent_step(model)
  params = [keras.ops.copy(v.value) for v in model.trainable_variables]  # copies: JAX donates the step's inputs
  non_trainable = [keras.ops.copy(v.value) for v in model.non_trainable_variables]
  state = (backend.to_tensor(np.asarray(learning_rate), dtype), backend.to_tensor(np.asarray(weight_decay), dtype))
  x, y = backend.to_tensor(np.asarray(x, dtype=dtype), dtype), backend.to_tensor(np.asarray(y, dtype=dtype), dtype)
  losses = []
  for _ in range(steps):
    params, state, non_trainable, loss = step(params, state, non_trainable, x, y)
    losses.append(loss)
  losses = tuple(float(backend.to_numpy(l)) for l in losses)
  if not all(math.isfinite(l) for l in losses):
    raise FloatingPointError(f"gradient descent diverged at learning rate {learning_rate:.4g}")
  for variable, value in zip(model.trainable_variables, params):
    variable.assign(value)
  for variable, value in zip(model.non_trainable_variables, non_trainable):
    variable.assign(value)
  return losses


__all__ = ["LOSSES", "TrainConfig", "TrainResult", "HalfMeanSquaredError", "outputs", "scores", "train",
           "gradient_descent"]
