"""harness.online: muP per-variable learning rates against the table, the optimizers by hand (gradients by numpy
backpropagation, independent of the backend's autodiff), logging and predictions, bad streams, learning.

Every test is backend portable (`make test-jax` reruns them under KERAS_BACKEND=jax)."""
import keras
import numpy as np
import pytest

from harness import errors, nets, online
from harness.nets import _layers

pytestmark = pytest.mark.backend_portable

D, K, BASE_WIDTH, BATCH = 5, 3, 8, 16
B_STD = 0.5  # nonzero bias multipliers, so every bias has a gradient


def _mlp(width: int, seed: int = 0, dtype: str = "float64", parameterization: str = "mup") -> keras.Model:
  layer = lambda: nets.Dense(w_std=2.0**0.5, b_std=B_STD)  # noqa: E731
  spec = nets.serial(layer(), nets.Relu(), layer(), nets.Relu(), layer())
  return spec.keras_model(width=width, input_shape=(D,), num_outputs=K, parameterization=parameterization,
                          seed=seed, dtype=dtype)


def _batches(n: int, seed: int = 0, batch: int = BATCH):
  rng = np.random.default_rng(seed)
  return [(rng.normal(size=(batch, D)), rng.normal(size=(batch, K))) for _ in range(n)]


def _weights(model):
  return {v.path: np.array(keras.ops.convert_to_numpy(v.value), dtype=np.float64) for v in model.trainable_variables}


def _mse_gradients(model, weights: dict, x: np.ndarray, y: np.ndarray) -> dict:
  """d/dw of 1/(2 B k) sum (f - y)^2 for the Dense/ReLU MLP, by hand: each layer is a h W + c b (the layers'
  forward multipliers a, c from harness/nets/_parameterization.py) followed by ReLU except the readout."""
  layers = _layers.affine_layers(model)
  hs, zs, h = [], [], x
  for i, layer in enumerate(layers):
    s = layer.scaling
    z = s.weight_multiplier * h @ weights[layer.kernel.path] + s.bias_multiplier * weights[layer.bias.path]
    hs.append(h)
    zs.append(z)
    h = np.maximum(z, 0) if i < len(layers) - 1 else z
  delta = (h - y) / y.size  # dL/df
  grads = {}
  for i in reversed(range(len(layers))):
    layer, s = layers[i], layers[i].scaling
    if i < len(layers) - 1:
      delta = delta * (zs[i] > 0)
    grads[layer.kernel.path] = s.weight_multiplier * hs[i].T @ delta
    grads[layer.bias.path] = s.bias_multiplier * delta.sum(0)
    delta = s.weight_multiplier * delta @ weights[layer.kernel.path].T
  return grads


def _table_multipliers(model, width: int, optimizer: str) -> dict:
  """Expected multipliers, written out from the table in harness/nets/_parameterization.py's docstring
  (r = width / base width): SGD r for every parameter; Adam input 1, hidden weights r^(-1/2), hidden biases 1,
  readout weights 1, readout bias r^(1/2)."""
  r = width / BASE_WIDTH
  layers = _layers.affine_layers(model)
  expected = {}
  for i, layer in enumerate(layers):
    role = "input" if i == 0 else "readout" if i == len(layers) - 1 else "hidden"
    if optimizer == "sgd":
      weight, bias = r, r
    else:
      weight, bias = {"input": (1.0, 1.0), "hidden": (r**-0.5, 1.0), "readout": (1.0, r**0.5)}[role]
    expected[layer.kernel.path], expected[layer.bias.path] = weight, bias
  return expected


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_step_updates_follow_the_mup_table(optimizer):
  lr = 0.05
  x, y = _batches(1)[0]
  for width in (BASE_WIDTH, 4 * BASE_WIDTH):
    model = _mlp(width)
    expected_m = _table_multipliers(model, width, optimizer)
    multipliers = nets.mup_lr_multipliers(model, BASE_WIDTH, optimizer)
    assert multipliers == pytest.approx(expected_m, rel=1e-12)
    before = _weights(model)
    grads = _mse_gradients(model, before, x, y)
    config = online.OnlineConfig(steps=1, learning_rate=lr, optimizer=optimizer, loss="mse")
    result = online.train_online(model, [(x, y)], x, y, config, multipliers)
    assert result.steps_done == 1
    after = _weights(model)
    for path, g in grads.items():
      m = expected_m[path]
      if optimizer == "sgd":
        step = -lr * m * g
      else:  # first Adam step: m^ = g, v^ = g^2
        step = -lr * m * g / (np.abs(g) + online.ADAM_EPSILON)
      np.testing.assert_allclose(after[path] - before[path], step, rtol=1e-8, atol=1e-14, err_msg=path)
    if width > BASE_WIDTH and optimizer == "adam":  # the table's width dependence is really there
      hidden = _layers.affine_layers(model)[1].kernel.path
      assert expected_m[hidden] == pytest.approx(0.5)


def test_heavy_ball_momentum_over_two_steps():
  lr, mu, width = 0.1, 0.9, 2 * BASE_WIDTH
  model = _mlp(width)
  multipliers = nets.mup_lr_multipliers(model, BASE_WIDTH, "sgd")
  (x1, y1), (x2, y2) = batches = _batches(2, seed=1)
  w0 = _weights(model)
  g1 = _mse_gradients(model, w0, x1, y1)
  w1 = {p: w0[p] - lr * multipliers[p] * g1[p] for p in w0}
  g2 = _mse_gradients(model, w1, x2, y2)
  w2 = {p: w1[p] - lr * multipliers[p] * (mu * g1[p] + g2[p]) for p in w0}
  config = online.OnlineConfig(steps=2, learning_rate=lr, momentum=mu)
  result = online.train_online(model, iter(batches), x1, y1, config, multipliers, log_steps=[0, 1, 2])
  after = _weights(model)
  for p in w0:
    np.testing.assert_allclose(after[p], w2[p], rtol=1e-8, atol=1e-14, err_msg=p)
  np.testing.assert_allclose(result.train_loss, [0.5 * np.mean((_predict(model, w0, x1) - y1) ** 2),
                                                 0.5 * np.mean((_predict(model, w1, x2) - y2) ** 2)], rtol=1e-8)


def _predict(model, weights, x):
  saved = _weights(model)
  for v in model.trainable_variables:
    v.assign(weights[v.path])
  out = np.asarray(keras.ops.convert_to_numpy(model(x)), dtype=np.float64)
  for v in model.trainable_variables:
    v.assign(saved[v.path])
  return out


def test_sgd_momentum_matches_keras_sgd():
  """Without multipliers the heavy ball is keras.optimizers.SGD(lr, momentum) (module docstring)."""
  lr, mu = 0.25, 0.5  # exact in float32 (Keras keeps them in float32)
  batches = _batches(4, seed=2)
  ours, theirs = _mlp(BASE_WIDTH, parameterization="ntk"), _mlp(BASE_WIDTH, parameterization="ntk")
  online.train_online(ours, batches, batches[0][0], batches[0][1],
                      online.OnlineConfig(steps=4, learning_rate=lr, momentum=mu))
  from harness.training import HalfMeanSquaredError  # pylint: disable=import-outside-toplevel
  theirs.compile(optimizer=keras.optimizers.SGD(lr, momentum=mu), loss=HalfMeanSquaredError(dtype="float64"))
  for x, y in batches:
    theirs.train_on_batch(x, y)
  a, b = _weights(ours), _weights(theirs)
  for p in a:  # Keras' losses take ops.mean, which under JAX computes float64 in float32 (harness.online.batch_loss)
    np.testing.assert_allclose(a[p], b[p], rtol=1e-6, atol=1e-7, err_msg=p)


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_predictions_kept_at_logged_steps_and_step_zero_loss(loss):
  n_eval, steps = 37, 6
  model = _mlp(BASE_WIDTH, dtype="float32")
  rng = np.random.default_rng(3)
  eval_x = rng.normal(size=(n_eval, D)).astype(np.float32)
  if loss == "mse":
    eval_y = rng.normal(size=(n_eval, K))
    stream = _batches(steps, seed=4)
  else:
    eval_y = rng.integers(0, K, size=n_eval)
    stream = [(x, rng.integers(0, K, size=BATCH)) for x, _ in _batches(steps, seed=4)]
  f0 = np.asarray(keras.ops.convert_to_numpy(model(eval_x)), dtype=np.float64)
  if loss == "mse":
    direct = 0.5 * np.mean((f0 - eval_y) ** 2)
  else:
    direct = np.mean(np.log(np.exp(f0).sum(1)) - f0[np.arange(n_eval), eval_y])
  config = online.OnlineConfig(steps=steps, learning_rate=0.1, loss=loss, eval_batch_size=16)  # 3 eval batches
  result = online.train_online(model, stream, eval_x, eval_y, config, log_steps=2)
  assert result.steps == (0, 2, 4, 6) and result.steps_done == steps and not result.diverged
  assert set(result.predictions) == set(result.steps)
  for t in result.steps:
    assert result.predictions[t].shape == (n_eval, K) and result.predictions[t].dtype == np.float32
  np.testing.assert_allclose(result.predictions[0], f0, rtol=1e-5, atol=1e-6)
  assert result.test_loss[0] == pytest.approx(direct, rel=1e-5)
  assert result.test_accuracy[0] == pytest.approx(np.mean(f0.argmax(1) == (eval_y if loss == "xent"
                                                                           else eval_y.argmax(1))))
  final = np.asarray(keras.ops.convert_to_numpy(model(eval_x)))
  np.testing.assert_allclose(result.predictions[steps], final, rtol=1e-5, atol=1e-6)  # weights written back
  assert result.train_loss.shape == (steps,)
  assert len(result.segment_s) == len(result.steps) and result.train_s == pytest.approx(sum(result.segment_s))


@pytest.mark.parametrize("call", ["eager", "predict_on_batch"])
def test_on_log_sees_the_weights_of_each_logged_step(call):
  """The callback's model computes the predictions kept at that step, and training goes on unchanged after it,
  also when the callback runs Keras' compiled predict (under JAX it donates the variables' buffers)."""
  model = _mlp(BASE_WIDTH, seed=2)
  eval_x, eval_y = _batches(1, seed=11)[0]
  seen = {}
  config = online.OnlineConfig(steps=4, learning_rate=0.2, momentum=0.5)
  predict = (lambda m: keras.ops.convert_to_numpy(m(eval_x))) if call == "eager" else (
      lambda m: np.asarray(m.predict_on_batch(eval_x)))
  result = online.train_online(model, _batches(4, seed=10), eval_x, eval_y, config, log_steps=2,
                               on_log=lambda step, m: seen.setdefault(step, predict(m)))
  assert sorted(seen) == [0, 2, 4]
  for step, outputs in seen.items():
    np.testing.assert_allclose(result.predictions[step], outputs, rtol=1e-5, atol=1e-6)
  plain = online.train_online(_mlp(BASE_WIDTH, seed=2), _batches(4, seed=10), eval_x, eval_y, config, log_steps=2)
  np.testing.assert_array_equal(plain.predictions[4], result.predictions[4])


def test_xent_integer_and_one_hot_labels_train_alike():
  rng = np.random.default_rng(5)
  labels = [rng.integers(0, K, size=BATCH) for _ in range(3)]
  xs = [x for x, _ in _batches(3, seed=6)]
  config = online.OnlineConfig(steps=3, learning_rate=0.3, loss="xent", optimizer="adam")
  results = []
  for as_one_hot in (False, True):
    stream = [(x, np.eye(K)[y] if as_one_hot else y) for x, y in zip(xs, labels)]
    results.append(online.train_online(_mlp(BASE_WIDTH), stream, xs[0], labels[0], config))
  np.testing.assert_allclose(results[0].predictions[3], results[1].predictions[3], rtol=1e-6)
  np.testing.assert_allclose(results[0].train_loss, results[1].train_loss, rtol=1e-10)


def test_runs_repeat_exactly_given_model_seed_and_stream():
  config = online.OnlineConfig(steps=5, learning_rate=0.2, momentum=0.9)
  runs = [online.train_online(_mlp(BASE_WIDTH, seed=7), _batches(5, seed=8), *_batches(1, seed=9)[0], config)
          for _ in range(2)]
  np.testing.assert_array_equal(runs[0].predictions[5], runs[1].predictions[5])
  np.testing.assert_array_equal(runs[0].train_loss, runs[1].train_loss)


def test_a_model_trained_again_reuses_its_compiled_step_and_equals_a_fresh_model(monkeypatch):
  """The width_consistency pattern: one model, its weights redrawn for each seed (nets.reinitialize), trained again
  with the same loss and optimizer: the step and forward pass compiled on the first training serve the next ones (built
  once), at any rate and multipliers (the lr sweep's), and each training equals that of a model built fresh with the
  seed, bit for bit. Another optimizer setting compiles anew."""
  built = []
  original = online._forward  # pylint: disable=protected-access
  monkeypatch.setattr(online, "_forward", lambda model: built.append(1) or original(model))
  config = online.OnlineConfig(steps=4, learning_rate=0.2, momentum=0.9)
  model = _mlp(BASE_WIDTH, seed=0)
  for seed in (0, 3, 5):
    nets.reinitialize(model, seed)
    reused = online.train_online(model, _batches(4, seed=8), *_batches(1, seed=9)[0], config, log_steps=2)
    fresh = online.train_online(_mlp(BASE_WIDTH, seed=seed), _batches(4, seed=8), *_batches(1, seed=9)[0], config,
                                log_steps=2)
    np.testing.assert_array_equal(reused.train_loss, fresh.train_loss)
    for step in (0, 2, 4):
      np.testing.assert_array_equal(reused.predictions[step], fresh.predictions[step])
  assert len(built) == 1 + 3   # the reused model's once, each fresh model's once
  # another rate and multipliers: the same compiled step, equal to a fresh model's training
  slower = online.OnlineConfig(steps=4, learning_rate=0.1, momentum=0.9)
  multipliers = nets.mup_lr_multipliers(model, BASE_WIDTH // 2, "sgd")
  nets.reinitialize(model, 0)
  reused = online.train_online(model, _batches(4, seed=8), *_batches(1, seed=9)[0], slower, multipliers)
  fresh = _mlp(BASE_WIDTH, seed=0)
  assert len(built) == 4
  fresh_result = online.train_online(fresh, _batches(4, seed=8), *_batches(1, seed=9)[0], slower,
                                     nets.mup_lr_multipliers(fresh, BASE_WIDTH // 2, "sgd"))
  np.testing.assert_array_equal(reused.train_loss, fresh_result.train_loss)
  np.testing.assert_array_equal(reused.predictions[4], fresh_result.predictions[4])
  online.train_online(model, _batches(4, seed=8), *_batches(1, seed=9)[0],
                      online.OnlineConfig(steps=4, learning_rate=0.1, momentum=0.5))
  assert len(built) == 6   # another momentum: compiled anew


def test_a_stream_that_runs_out_raises():
  model = _mlp(BASE_WIDTH)
  before = _weights(model)
  x, y = _batches(1)[0]
  config = online.OnlineConfig(steps=5, learning_rate=0.1)
  with pytest.raises(online.StreamExhausted, match="holds 3 batches, fewer than the 5"):
    online.train_online(model, _batches(3), x, y, config)  # a sized stream: refused before training
  assert all(np.array_equal(before[p], w) for p, w in _weights(model).items())
  with pytest.raises(online.StreamExhausted, match="ended after 3 batches"):
    online.train_online(model, (b for b in _batches(3)), x, y, config)
  assert issubclass(online.StreamExhausted, errors.HarnessError)  # the CLI's exit 2


def test_bad_multipliers_and_batches_are_refused():
  model = _mlp(BASE_WIDTH)
  x, y = _batches(1)[0]
  config = online.OnlineConfig(steps=2, learning_rate=0.1)
  multipliers = nets.mup_lr_multipliers(model, BASE_WIDTH, "sgd")
  missing = dict(multipliers)
  path = model.trainable_variables[2].path
  del missing[path]
  with pytest.raises(ValueError, match=f"no multiplier for the trainable variable.*{path}"):
    online.train_online(model, _batches(2), x, y, config, missing)
  with pytest.raises(ValueError, match="not trainable variables"):
    online.train_online(model, _batches(2), x, y, config, {**multipliers, "other/kernel": 1.0})
  with pytest.raises(ValueError, match="batch 1 has shapes"):
    online.train_online(model, _batches(1) + _batches(1, batch=BATCH - 1), x, y, config)
  with pytest.raises(ValueError, match="log_steps must lie in"):
    online.train_online(model, _batches(2), x, y, config, log_steps=[0, 3])
  with pytest.raises(ValueError, match="loss must be one of"):
    online.OnlineConfig(steps=1, learning_rate=0.1, loss="hinge")
  assert online.OnlineConfig(steps=1, learning_rate=0.1, loss="cross_entropy").loss == "xent"


def test_online_mse_learns_a_linear_map():
  """A plain Keras linear model (any Keras model trains, not only harness.nets ones) on y = x w*: fresh batches,
  SGD with momentum; the held-out loss falls by more than 100x."""
  d, k = 8, 2
  rng = np.random.default_rng(10)
  w_star = rng.normal(size=(d, k)) / np.sqrt(d)
  stream = ((x, x @ w_star) for x in (rng.normal(size=(BATCH, d)) for _ in range(300)))
  eval_x = rng.normal(size=(200, d))
  inputs = keras.Input((d,), dtype="float64")
  model = keras.Model(inputs, keras.layers.Dense(k, dtype="float64",
                                                 kernel_initializer=keras.initializers.RandomNormal(seed=1))(inputs))
  config = online.OnlineConfig(steps=300, learning_rate=0.2, momentum=0.5)
  result = online.train_online(model, stream, eval_x, eval_x @ w_star, config, log_steps=100)
  assert result.steps == (0, 100, 200, 300)
  assert list(result.test_loss) == sorted(result.test_loss, reverse=True)
  assert result.test_loss[-1] < 0.01 * result.test_loss[0]
  assert np.mean(result.train_loss[-20:]) < 0.01 * np.mean(result.train_loss[:20])


def test_divergence_stops_at_the_logged_step():
  config = online.OnlineConfig(steps=40, learning_rate=1e4, momentum=0.9)
  result = online.train_online(_mlp(BASE_WIDTH), _batches(40), *_batches(1)[0], config, log_steps=10)
  assert result.diverged and result.steps_done < 40 and result.steps[-1] == result.steps_done
