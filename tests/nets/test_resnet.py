"""harness.nets.cifar_resnet: the ResNet-18 family with a width multiplier (shapes, layer roles, muP multipliers,
width-independent activations at initialisation under muP, reproducible seeds, training steps). The numerical
tests are backend portable; the structural ones (layout, roles, multipliers, counts: harness code on the built
layers, the same under any backend) run under TensorFlow only, as building a ResNet under JAX compiles a random
draw for each weight shape (about 0.5 s each on 2 CPU cores)."""
import keras
import numpy as np
import pytest

from harness import nets, online
from harness.nets import _layers, resnet

SMALL = 1 / 16   # stage channels 4, 8, 16, 32


@pytest.mark.backend_portable
def test_stage_channels_and_multipliers_that_do_not_divide():
  assert nets.stage_channels(1) == (64, 128, 256, 512)
  assert nets.stage_channels(0.5) == (32, 64, 128, 256)
  assert nets.stage_channels(8) == (512, 1024, 2048, 4096)
  for bad in (0.3, 1 / 128, 0.0, -1.0):
    with pytest.raises(ValueError, match="does not divide"):
      nets.stage_channels(bad)


def test_resnet18_layout_and_roles():
  model = nets.cifar_resnet(SMALL, input_shape=(32, 32, 3), num_outputs=10, seed=0)
  layers = _layers.affine_layers(model)
  assert len(layers) == 1 + 16 + 3 + 1        # stem, 8 blocks x 2 convs, 3 projection shortcuts, readout
  assert [l.role for l in layers].count("input") == 1 and layers[0].role == "input"
  assert layers[-1].role == "readout" and layers[-1].units == 10
  assert {l.model_width for l in layers} == {4}
  assert max(l.units for l in layers[:-1]) == 32
  assert model.output_shape == (None, 10)
  assert model(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)


def test_mup_multipliers_follow_the_width_multiplier():
  model = nets.cifar_resnet(SMALL * 4, input_shape=(8, 8, 3), seed=1)
  multipliers = nets.mup_lr_multipliers(model, base_width=4, optimizer="sgd")
  assert set(multipliers.values()) == {4.0}
  adam = nets.mup_lr_multipliers(model, base_width=4, optimizer="adam")
  assert sorted(set(adam.values())) == [0.5, 1.0, 2.0]   # hidden weights r^-1/2, input/biases 1, readout bias r^1/2


def _mean_abs_last_block(multiplier, x, seeds=(0, 1, 2, 3)):
  """Mean |h| after the last block, averaged over initialisations (a narrow net's single draw varies by ~30%)."""
  values = []
  for seed in seeds:
    model = nets.cifar_resnet(multiplier, input_shape=x.shape[1:], seed=seed, blocks=(1, 1), base_channels=(64, 128))
    relu = [l for l in model.layers if isinstance(l, keras.layers.ReLU)][-1]
    values.append(np.mean(np.abs(keras.ops.convert_to_numpy(keras.Model(model.inputs[0], relu.output)(x)))))
  return float(np.mean(values))


@pytest.mark.backend_portable
def test_mup_activations_do_not_grow_with_width_at_init():
  """16x more channels, the same activation scale (each the mean of four initialisations)."""
  x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype(np.float32)
  narrow, wide = _mean_abs_last_block(1 / 4, x), _mean_abs_last_block(4, x)
  assert wide == pytest.approx(narrow, rel=0.15)


@pytest.mark.backend_portable
def test_seeds_reproduce_and_online_steps_train():
  x = np.random.default_rng(1).normal(size=(16, 8, 8, 3)).astype(np.float32)
  labels = np.arange(16) % 10
  a, b = (nets.cifar_resnet(SMALL, input_shape=(8, 8, 3), seed=5) for _ in range(2))
  np.testing.assert_array_equal(keras.ops.convert_to_numpy(a(x)), keras.ops.convert_to_numpy(b(x)))
  # another seed's weights drawn into a built ResNet are that seed's (width_consistency reuses one model per width)
  other = nets.cifar_resnet(SMALL, input_shape=(8, 8, 3), seed=6)
  nets.reinitialize(b, 6)
  assert not b.non_trainable_variables
  for got, want in zip(b.weights, other.weights):
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
  config = online.OnlineConfig(steps=5, learning_rate=0.5, loss="xent")
  result = online.train_online(a, [(x, labels)] * 5, x, labels, config, nets.mup_lr_multipliers(a, 4))
  assert not result.diverged and result.test_loss[-1] < result.test_loss[0]


def test_forward_macs_counts_the_built_model():
  """forward_macs against the layers of the built model: output positions x filter area x C_in x C_out per conv."""
  for multiplier, size, blocks in ((1.0, 32, (2, 2, 2, 2)), (0.25, 8, (1, 2, 1, 1))):
    model = nets.cifar_resnet(multiplier, input_shape=(size, size, 3), blocks=blocks)
    counted = 0
    for layer in _layers.affine_layers(model):
      fan_in = int(layer.kernel.shape[0]) if len(layer.kernel.shape) == 2 else int(np.prod(layer.kernel.shape[:3]))
      positions = 1 if len(layer.output.shape) == 2 else int(layer.output.shape[1] * layer.output.shape[2])
      counted += positions * fan_in * layer.units
    assert resnet.forward_macs(multiplier, size, blocks=blocks) == counted


def test_parameter_count_counts_the_built_model():
  """parameter_count (the pre-flight's memory estimate) against the kernels of the built model."""
  for multiplier, blocks in ((1.0, (2, 2, 2, 2)), (0.25, (1, 2, 1, 1))):
    model = nets.cifar_resnet(multiplier, input_shape=(8, 8, 3), blocks=blocks)
    counted = sum(int(np.prod(layer.kernel.shape)) for layer in _layers.affine_layers(model))
    assert resnet.parameter_count(multiplier, blocks=blocks) == counted
