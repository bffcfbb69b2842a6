"""harness.training: the SGD step and loss normalisation by hand, determinism, and learning on toy data."""
import keras
import numpy as np
import pytest

from harness import training


def _linear_model(d: int, k: int, seed: int = 0, zero: bool = False) -> keras.Model:
  init = "zeros" if zero else keras.initializers.RandomNormal(stddev=0.3, seed=seed)
  inputs = keras.Input((d,), dtype="float64")
  outputs = keras.layers.Dense(k, use_bias=False, kernel_initializer=init, dtype="float64")(inputs)
  return keras.Model(inputs, outputs)


def _toy(n=64, d=5, k=3, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d))
  labels = (x @ rng.normal(size=(d, k))).argmax(1)  # linearly separable classes
  y = np.eye(k)[labels] - 1.0 / k
  return x, y


def test_one_full_batch_mse_step_matches_the_gradient_by_hand():
  """L = 1/(2 n k) |X W - Y|^2, so from W = 0 one step gives W = lr / (n k) X^T Y."""
  x, y = _toy()
  model = _linear_model(5, 3, zero=True)
  lr = 0.625  # exact in float32 (Keras keeps the learning rate in a float32 variable)
  result = training.train(model, x, y, x, y, training.TrainConfig(learning_rate=lr, epochs=1), verbose=False)
  expected = lr / y.size * x.T @ y
  np.testing.assert_allclose(model.get_weights()[0], expected, rtol=1e-12)
  assert result.steps == 1
  assert result.losses[0] == pytest.approx(0.5 * np.mean(y ** 2), rel=1e-6)  # at W = 0 (Keras reports in float32)


def test_weight_decay_is_decoupled():
  """With weight decay wd one step from W0 gives W0 - lr (grad + wd W0): the gradient at W0 plus the decay."""
  x, y = _toy()
  model = _linear_model(5, 3, seed=2)
  w0 = model.get_weights()[0]
  lr, wd = 0.5, 0.25
  training.train(model, x, y, x, y, training.TrainConfig(learning_rate=lr, epochs=1, weight_decay=wd), verbose=False)
  grad = x.T @ (x @ w0 - y) / y.size
  np.testing.assert_allclose(model.get_weights()[0], w0 - lr * grad - lr * wd * w0, rtol=1e-6)
  with pytest.raises(ValueError):
    training.TrainConfig(learning_rate=1.0, epochs=1, weight_decay=-1.0)


def test_full_batch_mse_converges_to_least_squares():
  x, y = _toy(n=40, d=4)
  model = _linear_model(4, 3)
  hessian_max = np.linalg.eigvalsh(x.T @ x / y.size)[-1]  # of L = 1/(2 n k) |X W - Y|^2
  config = training.TrainConfig(learning_rate=1.0 / hessian_max, epochs=400)
  result = training.train(model, x, y, x, y, config, verbose=False)
  w_ls = np.linalg.lstsq(x, y, rcond=None)[0]
  np.testing.assert_allclose(model.get_weights()[0], w_ls, atol=1e-6)
  assert result.train_mse == pytest.approx(np.mean((x @ w_ls - y) ** 2), rel=1e-6)
  assert not result.diverged and result.losses[-1] < result.losses[0]


def test_minibatch_runs_are_deterministic_given_the_seed():
  x, y = _toy(n=100)
  config = training.TrainConfig(learning_rate=0.5, epochs=3, batch_size=16, seed=3)
  runs = []
  for _ in range(2):
    model = _linear_model(5, 3, seed=1)
    runs.append((training.train(model, x, y, x, y, config, verbose=False), model.get_weights()[0]))
  assert runs[0][0] == runs[1][0]
  np.testing.assert_array_equal(runs[0][1], runs[1][1])
  assert runs[0][0].steps == 3 * (100 // 16)  # the partial last batch is dropped
  other = _linear_model(5, 3, seed=1)
  training.train(other, x, y, x, y, dataclasses_replace(config, seed=4), verbose=False)
  assert not np.array_equal(other.get_weights()[0], runs[0][1])  # the seed sets the batch order


def dataclasses_replace(config, **changes):
  import dataclasses
  return dataclasses.replace(config, **changes)


def test_cross_entropy_learns_separable_classes():
  x, y = _toy(n=200)
  x_test, y_test = _toy(n=200, seed=0)
  model = _linear_model(5, 3, seed=2)
  before = training.scores(model, x, y)[0]
  result = training.train(model, x, y, x_test, y_test,
                          training.TrainConfig(learning_rate=0.5, epochs=50, batch_size=20, loss="cross_entropy"),
                          verbose=False)
  assert result.train_accuracy > 0.95 > before
  assert result.losses[-1] < result.losses[0]


def test_divergence_is_reported_not_hidden():
  x, y = _toy()
  model = _linear_model(5, 3, seed=0)
  result = training.train(model, x * 1e3, y, x, y, training.TrainConfig(learning_rate=1e3, epochs=50),
                          verbose=False)
  assert result.diverged and np.isnan(result.test_accuracy)


def test_bad_config_is_rejected():
  with pytest.raises(ValueError):
    training.TrainConfig(learning_rate=0.1, epochs=1, loss="hinge")


def test_gradient_descent_matches_train_and_shares_its_compiled_step():
  """The compiled full-batch step follows `train`'s full-batch trajectory (with weight decay), and nets of one
  structure built with other seeds reuse the compiled step with their own weights."""
  from harness import nets  # pylint: disable=import-outside-toplevel
  x, y = _toy(n=32, d=4, k=3)
  spec = nets.serial(nets.Dense(), nets.Relu(), nets.Dense())
  build = lambda seed: spec.keras_model(width=16, input_shape=(4,), num_outputs=3, seed=seed, dtype="float64")
  a, b = build(0), build(0)
  config = training.TrainConfig(learning_rate=0.5, epochs=10, weight_decay=0.125)  # exact in float32 (Keras)
  result = training.train(a, x, y, x, y, config, verbose=False)
  losses = training.gradient_descent(b, x, y, learning_rate=0.5, steps=10, weight_decay=0.125)
  for wa, wb in zip(a.get_weights(), b.get_weights()):
    np.testing.assert_allclose(wb, wa, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(losses, result.losses, rtol=1e-6)  # Keras reports its losses in float32
  other = build(1)
  before = other.get_weights()
  training.gradient_descent(other, x, y, learning_rate=0.5, steps=1)
  assert training._gradient_descent_step(other) is training._gradient_descent_step(b)
  assert not np.allclose(other.get_weights()[0], before[0]) and not np.allclose(other.get_weights()[0], b.get_weights()[0])
  with pytest.raises(FloatingPointError):
    training.gradient_descent(build(2), x, 1e3 * y, learning_rate=1e4, steps=20)
  with pytest.raises(ValueError):
    training.gradient_descent(b, x, y, learning_rate=-1.0, steps=1)
