"""harness.nets.backends: the XLA:CPU vector-width preference (module docstring there; `configure_xla_cpu`:
test_imports.py)."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from harness.nets import backends

pytestmark = pytest.mark.backend_portable


def test_vector_width_is_added_to_xla_flags():
  environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  backends.prefer_cpu_vector_width(environ)
  assert environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x --xla_cpu_prefer_vector_width={backends.CPU_VECTOR_WIDTH}"
  empty = {}
  backends.prefer_cpu_vector_width(empty)
  assert empty["XLA_FLAGS"] == f"--xla_cpu_prefer_vector_width={backends.CPU_VECTOR_WIDTH}"


def test_a_width_the_user_set_is_kept():
  environ = {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}
  backends.prefer_cpu_vector_width(environ)
  assert environ["XLA_FLAGS"] == "--xla_cpu_prefer_vector_width=256"


def test_per_program_options_defer_to_xla_flags(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=256")
  assert backends.cpu_compiler_options() == {}
  monkeypatch.setenv("XLA_FLAGS", "")
  assert backends.cpu_compiler_options() == {"xla_cpu_prefer_vector_width": backends.CPU_VECTOR_WIDTH}


def test_xla_flags_are_added_once():
  environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  backends.add_xla_flag(backends.DETERMINISTIC_XLA_FLAG, environ)
  backends.add_xla_flag(backends.DETERMINISTIC_XLA_FLAG, environ)
  assert environ["XLA_FLAGS"] == f"--xla_dump_to=/tmp/x {backends.DETERMINISTIC_XLA_FLAG}"


def test_determinism_under_jax_needs_the_flag_before_jax_starts():
  """Under JAX, once its backends run, XLA_FLAGS is read already: turning determinism on then is an error (the CLI
  sets it first); with the flag in place it is on. (TensorFlow: op determinism, checked by the CLI test.)"""
  import keras
  if keras.backend.backend() != "jax":
    pytest.skip("JAX only")
  import jax.numpy as jnp
  from harness.nets.backends import jax as jax_backend
  jnp.zeros(1).block_until_ready()  # JAX has started
  with pytest.raises(RuntimeError, match="JAX has started already"):
    jax_backend.enable_determinism({"XLA_FLAGS": ""})
  jax_backend.enable_determinism({"XLA_FLAGS": backends.DETERMINISTIC_XLA_FLAG})  # already set: nothing to do


@pytest.mark.parametrize("seed", [0, 7, 123456789, 2**31 - 2, 2**31 - 1])
def test_seeded_normals_are_keras_random_normal(seed):
  """The fast draws of `reinitialize` give keras.random.normal's values for int seeds, bit for bit (they mirror
  how Keras turns the int into a backend seed, so a Keras upgrade that changes that fails here)."""
  import keras  # pylint: disable=import-outside-toplevel
  draws = [((3, 4), 0.0, 0.7, seed), ((5,), 0.25, 1.3, (seed + 1) % 2**31)]
  got = backends.current().seeded_normals(draws, "float32")
  assert len(got) == len(draws)
  for (shape, mean, stddev, draw_seed), values in zip(draws, got):
    want = np.asarray(keras.random.normal(shape, mean=mean, stddev=stddev, dtype="float32", seed=draw_seed))
    assert np.asarray(values).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(values), want)


_FAULTS_OF_A_REALLOCATION = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
  from harness.nets import backends
  assert backends.keep_freed_memory()
def faults_of_filling(size=2**20):  # three 8 MiB buffers, as a kernel call's outputs and temporaries
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  buffers = [np.ones(size) for _ in range(3)]
  del buffers
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_filling()
print(min(faults_of_filling() for _ in range(3)))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
  """After keep_freed_memory, refilling freed buffers (3 x 8 MiB) touches no fresh pages; by default glibc returns
  them to the OS (24 MiB of free heap is past its trim threshold) and their pages fault again (about 1000 faults here,
  numpy asking for huge pages)."""
  def faults(mode):
    out = subprocess.run([sys.executable, "-c", _FAULTS_OF_A_REALLOCATION, mode], capture_output=True, text=True,
                         check=True, cwd=pathlib.Path(__file__).resolve().parents[2])
    return int(out.stdout.split()[-1])
  assert faults("default") >= 500
  assert faults("keep") < 50
