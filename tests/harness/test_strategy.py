"""--strategy: Keras models data-parallel over several devices (tf.distribute under TensorFlow, keras.distribution
under JAX) give the single-device run's numbers within float32 rounding; the record names the devices used (kernel
tiles go to them: ctx.engine.devices).

Each backend runs in a subprocess with two logical CPU devices (tf.config.set_logical_device_configuration;
XLA_FLAGS=--xla_force_host_platform_device_count=2 for JAX), as a host with two accelerators would have."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.benchmarks import helpers

REPO = helpers.REPO
# float32 SGD: splitting each step's gradient sum over two replicas changes it by a few roundings (u = 6e-8); over the
# tier's 16 steps the measured change is 1.4e-7 relative; 1e-4 leaves room for longer chains of steps and stays far
# inside the seed-to-seed spread (one test example, 1/32, moves accuracy more).
FINITE_RTOL = 1e-4
N_TEST = 32

_SCRIPT = textwrap.dedent("""
    import dataclasses, json, os, sys, tempfile
    if os.environ["KERAS_BACKEND"] == "tensorflow":
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from harness import nets, registry, runner
    from harness.nets import backends
    from benchmarks.pooling.experiment import EXPERIMENT
    from tests.benchmarks import helpers
    from tests.benchmarks.test_pooling import _tiny

    with backends.current().distribution("mirrored") as devices:   # models built inside are data-parallel
      model = nets.serial(nets.Dense(), nets.Relu(), nets.Dense()).keras_model(width=8, input_shape=(3,), num_outputs=2)
      replicas = (model.distribute_strategy.num_replicas_in_sync if os.environ["KERAS_BACKEND"] == "tensorflow"
                  else len(keras.distribution.distribution().device_mesh.devices.reshape(-1)))
    # 36 training images: 4 held out for validation, batches of 32 that split evenly over two devices; one seed, an FC
    # and a CNN net, no CNN theory profile (its kernels compile for a while and use no strategy; CI time: this runs
    # twice per backend)
    small = lambda: dataclasses.replace(_tiny.config(), seeds=(0,), n_train=36, architectures=("fcn", "cnn_gap"),
                                        cnn_theory_depths=())
    tier = registry.Tier("smoke", small, _tiny.hardware, 60, _tiny.doc)
    out = {"devices": len(devices), "replicas": replicas}
    for strategy in ("one_device", "mirrored"):
      name = f"pooling_{strategy}"
      registry.register(dataclasses.replace(EXPERIMENT, name=name, tiers=(tier,)))
      _, record = runner.run(name, "smoke", output_dir=os.path.join(tempfile.mkdtemp(), "run"), verbose=False,
                             mirrors=f"cifar10={helpers.EXACT_MIRROR}", strategy=strategy)
      out[strategy] = {"strategy": record["strategy"], "metrics": {k: m["values"] for k, m in record["metrics"].items()}}
    # the run's distribution is gone afterwards: models built now are plain single-device ones
    if os.environ["KERAS_BACKEND"] == "tensorflow":
      out["restored"] = not tf.distribute.has_strategy()
    else:
      out["restored"] = keras.distribution.distribution() is None
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(helpers.EXACT_MIRROR), reason="needs ../shared/data/cifar10-exact-subset")
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_mirrored_run_matches_one_device(backend):
  env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2",
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip())
  result = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-4000:]
  out = json.loads(result.stdout.split("RESULT", 1)[1])
  assert (out["devices"], out["replicas"], out["restored"]) == (2, 2, True)
  one, mirrored = out["one_device"], out["mirrored"]
  assert len(one["strategy"]["devices"]) == 1 and len(mirrored["strategy"]["devices"]) == 2
  finite = [k for k in one["metrics"] if k.startswith("finite_")]
  assert finite and set(one["metrics"]) == set(mirrored["metrics"])
  for name, values in one["metrics"].items():
    other = mirrored["metrics"][name]
    if name.startswith("finite_") and "_acc" in name:   # an argmax may flip at a tie: one test example at most
      assert all(abs(a - b) <= 1 / N_TEST + 1e-12 for a, b in zip(values, other)), (name, values, other)
    elif name.startswith("finite_"):
      assert all(abs(a - b) <= FINITE_RTOL * abs(a) for a, b in zip(values, other)), (name, values, other)
    else:   # kernels and theory: no Keras model involved, tiles on one device or two
      assert all(abs(a - b) <= 1e-9 * max(abs(a), 1e-300) for a, b in zip(values, other)), (name, values, other)
