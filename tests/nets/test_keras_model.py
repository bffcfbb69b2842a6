"""Finite Keras networks of harness.nets specs: shapes, parameterizations, seeding, serialisation, muP rates."""
import math

import keras
import numpy as np
import pytest

from harness import nets
from harness.nets import _parameterization

SEED = 3
WIDTH = 16
SQRT2 = math.sqrt(2.0)
IMAGE_SHAPE = (5, 5, 3)


def _cnn(readout=nets.GlobalAvgPool):
  return nets.serial(nets.Conv(3, SQRT2, 0.1), nets.Relu(),
                     nets.residual(nets.serial(nets.Relu(), nets.Conv(3, 1.0, 0.0)), 0.5),
                     nets.Conv(3, SQRT2, 0.1, strides=2), nets.Erf(), readout(), nets.Dense(SQRT2, 0.1))


def _fc():
  return nets.serial(nets.Dense(1.5, 0.2), nets.Relu(), nets.Dense(1.2, 0.1), nets.Relu(), nets.Dense(1.0, 0.3))


def _x(shape, n=4, seed=0):
  return np.random.default_rng(seed).standard_normal((n,) + shape).astype("float32")


def _predict(model, x):
  return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))


@pytest.mark.backend_portable
@pytest.mark.parametrize("parameterization", nets.PARAMETERIZATIONS)
@pytest.mark.parametrize("make,shape", [(_fc, (7,)), (_cnn, IMAGE_SHAPE), (lambda: _cnn(nets.Flatten), IMAGE_SHAPE)])
def test_shapes_and_widths(make, shape, parameterization):
  model = make().keras_model(width=WIDTH, input_shape=shape, num_outputs=3, parameterization=parameterization,
                             seed=SEED)
  assert _predict(model, _x(shape)).shape == (4, 3)
  affine = nets._layers.affine_layers(model)  # pylint: disable=protected-access
  assert [layer.units for layer in affine[:-1]] == [WIDTH] * (len(affine) - 1)
  assert affine[-1].units == 3 and affine[-1].role == "readout" and affine[0].role == "input"
  assert len({v.path for v in model.trainable_variables}) == len(model.trainable_variables)


@pytest.mark.backend_portable
def test_seeding_is_deterministic_and_reinitialize_reproduces_it():
  spec = _cnn()
  a = spec.keras_model(WIDTH, IMAGE_SHAPE, 2, seed=SEED)
  b = spec.keras_model(WIDTH, IMAGE_SHAPE, 2, seed=SEED)
  c = spec.keras_model(WIDTH, IMAGE_SHAPE, 2, seed=SEED + 1)
  for wa, wb in zip(a.get_weights(), b.get_weights()):
    np.testing.assert_array_equal(wa, wb)
  assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
  nets.reinitialize(a, SEED + 1)
  for wa, wc in zip(a.get_weights(), c.get_weights()):
    np.testing.assert_array_equal(wa, wc)


@pytest.mark.backend_portable
def test_a_seed_draws_the_same_weights_in_every_precision():
  """--dtype changes the arithmetic, not the draw: float64 weights are the float32 draw, cast (Keras would
  draw uncorrelated normals per dtype, and a one-seed learning-rate sweep then picked another rate)."""
  spec = nets.serial(nets.Conv(3, w_std=1.4, b_std=0.1), nets.Relu(), nets.Flatten(), nets.Dense(w_std=1.0, b_std=0.2))
  weights = {}
  for dtype in ("float32", "float64"):
    model = spec.keras_model(width=4, input_shape=(5, 5, 2), num_outputs=3, dtype=dtype, seed=11)
    weights[dtype] = [np.asarray(v) for v in model.weights]
    nets.reinitialize(model, 12)
    weights[dtype + "/reinitialized"] = [np.asarray(v) for v in model.weights]
  for key in ("", "/reinitialized"):
    for w32, w64 in zip(weights["float32" + key], weights["float64" + key]):
      assert w64.dtype == np.float64 and np.any(w32 != 0)
      np.testing.assert_array_equal(w32.astype(np.float64), w64)


def test_config_round_trip_and_save_load(tmp_path):
  model = _cnn().keras_model(WIDTH, IMAGE_SHAPE, 2, parameterization="mup", seed=SEED)
  x = _x(IMAGE_SHAPE)
  clone = keras.Model.from_config(model.get_config())
  clone.set_weights(model.get_weights())
  np.testing.assert_array_equal(_predict(clone, x), _predict(model, x))
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_array_equal(_predict(loaded, x), _predict(model, x))
  dense = model.get_layer("dense_0")
  assert dense.get_config()["parameterization"] == "mup" and dense.get_config()["role"] == "readout"


@pytest.mark.backend_portable
def test_parameterizations_are_reparameterizations_of_each_other():
  """Same N(0, 1) draws: standard weights w/sqrt(fan_in) * z give the NTK net's output; the muP readout is the
  NTK readout / sqrt(fan_in) (hidden layers identical)."""
  spec = _fc()
  x = _x((7,))
  ntk = spec.keras_model(WIDTH, (7,), 3, parameterization="ntk", seed=SEED)
  mup = spec.keras_model(WIDTH, (7,), 3, parameterization="mup", seed=SEED)
  standard = spec.keras_model(WIDTH, (7,), 3, parameterization="standard", seed=SEED)
  for src, dst in zip(nets._layers.affine_layers(ntk), nets._layers.affine_layers(standard)):  # pylint: disable=protected-access
    dst.kernel.assign(src.kernel * (src.w_std / math.sqrt(src.fan_in)))
    dst.bias.assign(src.bias * src.b_std)
  f_ntk = _predict(ntk, x)
  np.testing.assert_allclose(_predict(standard, x), f_ntk, rtol=1e-5, atol=1e-6)
  fan_in = nets._layers.affine_layers(ntk)[-1].fan_in  # pylint: disable=protected-access
  np.testing.assert_allclose(_predict(mup, x), f_ntk / math.sqrt(fan_in), rtol=1e-5, atol=1e-7)


@pytest.mark.backend_portable
def test_standard_initialisation_scale():
  """Standard parameterization: weights ~ N(0, w_std^2 / fan_in), biases ~ N(0, b_std^2)."""
  spec = nets.serial(nets.Dense(2.0, 0.5), nets.Relu(), nets.Dense(1.0, 0.0))
  model = spec.keras_model(512, (256,), 1, parameterization="standard", seed=SEED)
  first = nets._layers.affine_layers(model)[0]  # pylint: disable=protected-access
  w, b = (np.asarray(keras.ops.convert_to_numpy(v)) for v in (first.kernel, first.bias))
  # Relative standard error of a sample std from N draws: 1/sqrt(2N); tolerances are 5 of those.
  assert w.std() == pytest.approx(2.0 / math.sqrt(256), rel=5 / math.sqrt(2 * w.size))
  assert b.std() == pytest.approx(0.5, rel=5 / math.sqrt(2 * b.size))


def test_mup_learning_rate_multipliers():
  spec = nets.serial(nets.Dense(1.0, 0.1), nets.Relu(), nets.Dense(1.0, 0.1), nets.Relu(), nets.Dense(1.0, 0.1))
  model = spec.keras_model(64, (5,), 2, parameterization="mup", seed=SEED)
  r = 64 / 16
  sgd = nets.mup_lr_multipliers(model, base_width=16, optimizer="sgd")
  assert set(sgd) == {v.path for v in model.trainable_variables}
  assert all(value == pytest.approx(r) for value in sgd.values())
  adam = nets.mup_lr_multipliers(model, base_width=16, optimizer="adam")
  assert adam == pytest.approx({
      "dense_0/kernel": 1.0, "dense_0/bias": 1.0,          # input layer
      "dense_1/kernel": r**-0.5, "dense_1/bias": 1.0,      # hidden
      "dense_2/kernel": 1.0, "dense_2/bias": r**0.5,       # readout (its bias carries 1/sqrt(fan_in))
  })
  assert nets.mup_lr_multipliers(model, base_width=64, optimizer="adam")["dense_1/kernel"] == 1.0
  with pytest.raises(ValueError, match="not 'mup'"):
    nets.mup_lr_multipliers(spec.keras_model(64, (5,), 2, parameterization="ntk"), base_width=16)


def test_affine_scaling_table():
  s = _parameterization.affine_scaling("mup", "readout", fan_in=100, w_std=2.0, b_std=0.5)
  assert (s.weight_init_std, s.weight_multiplier, s.bias_multiplier) == (1.0, 2.0 / 100, 0.5 / 10)
  s = _parameterization.affine_scaling("ntk", "hidden", fan_in=100, w_std=2.0, b_std=0.5)
  assert (s.weight_init_std, s.weight_multiplier, s.bias_init_std, s.bias_multiplier) == (1.0, 0.2, 1.0, 0.5)
  s = _parameterization.affine_scaling("standard", "hidden", fan_in=100, w_std=2.0, b_std=0.5)
  assert (s.weight_init_std, s.weight_multiplier, s.bias_init_std, s.bias_multiplier) == (0.2, 1.0, 0.5, 1.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(parameterization="sp"), "parameterization must be"),
    (dict(width=0), "width and num_outputs"),
])
def test_bad_arguments(kwargs, match):
  args = dict(width=WIDTH, input_shape=(7,), num_outputs=2) | kwargs
  with pytest.raises(ValueError, match=match):
    _fc().keras_model(**args)


def test_model_needs_a_dense_readout():
  with pytest.raises(ValueError, match="Dense readout"):
    nets.serial(nets.Dense(), nets.Relu()).keras_model(WIDTH, (7,), 2)
  with pytest.raises(ValueError, match="input channels"):
    nets.serial(nets.residual(nets.Dense()), nets.Dense()).keras_model(WIDTH, (7,), 2)


@pytest.mark.backend_portable
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_reaches_every_layer(dtype):
  spec = nets.serial(nets.Conv(filter_size=3, w_std=1.5, b_std=0.1), nets.Erf(),
                     nets.residual(nets.serial(nets.Relu(), nets.Conv(filter_size=3, w_std=1.0)), branch_scale=0.3),
                     nets.GlobalAvgPool(), nets.Dense(w_std=1.5, b_std=0.1))
  model = spec.keras_model(width=4, input_shape=(5, 5, 2), num_outputs=3, dtype=dtype)
  assert keras.backend.standardize_dtype(model.inputs[0].dtype) == dtype
  for layer in model.layers[1:]:  # after the InputLayer
    assert layer.compute_dtype == dtype, layer.name
  for variable in model.weights:
    assert keras.backend.standardize_dtype(variable.dtype) == dtype, variable.path
  x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype(dtype)
  assert keras.backend.standardize_dtype(model(x).dtype) == dtype


@pytest.mark.backend_portable
@pytest.mark.parametrize("strides", [1, 2])
def test_circular_conv_is_a_valid_conv_of_the_wrapped_image(strides):
  spec = nets.serial(nets.Conv(filter_size=3, w_std=1.3, b_std=0.2, strides=strides, padding="CIRCULAR"),
                     nets.Flatten(), nets.Dense(w_std=1.0))
  model = spec.keras_model(width=4, input_shape=(5, 5, 2), num_outputs=1, dtype="float64")
  conv = model.get_layer("conv_0")
  x = np.random.default_rng(0).normal(size=(2, 5, 5, 2))
  wrapped = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="wrap")
  w, b = (np.asarray(v) for v in conv.get_weights())
  out = -(-5 // strides)
  want = np.zeros((2, out, out, 4))
  for i in range(out):
    for j in range(out):
      patch = wrapped[:, strides * i:strides * i + 3, strides * j:strides * j + 3, :]
      want[:, i, j] = np.einsum("nhwc,hwcf->nf", patch, w)
  want = want * conv.scaling.weight_multiplier + b * conv.scaling.bias_multiplier
  got = keras.ops.convert_to_numpy(keras.Model(model.inputs[0], conv.output)(x))
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
