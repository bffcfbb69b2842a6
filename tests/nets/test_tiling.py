"""Tiled kernels equal the one-shot kernel; symmetric work, padding, resumable cache, several devices."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness import nets
from harness.nets import tiling

SEED = 0
N1, N2, DIM, TILE = 10, 7, 6, 4  # 3 row tiles (last padded 4 -> 2 rows), 2 column tiles
ATOL = 1e-12
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spec():
  return nets.serial(nets.Dense(w_std=1.5, b_std=0.2), nets.Relu(), nets.Dense(w_std=1.2, b_std=0.1))


def _inputs():
  rng = np.random.default_rng(SEED)
  return rng.normal(size=(N1, DIM)), rng.normal(size=(N2, DIM))


class CountingSpec:
  """Forwards to a real spec and records the input shapes of every kernel call."""

  def __init__(self, spec):
    self.spec, self.calls = spec, []

  def describe(self):
    return repr(self.spec)

  def kernel(self, x1, x2=None, get=("nngp", "ntk"), dtype="float64"):
    self.calls.append((x1.shape, None if x2 is None else x2.shape))
    return self.spec.kernel(x1, x2, get=get, dtype=dtype)


class Interrupt(Exception):
  pass


@pytest.mark.backend_portable
def test_tiled_equals_one_shot_rectangular():
  x1, x2 = _inputs()
  spec = CountingSpec(_spec())
  tiled = tiling.kernel_tiled(spec, x1, x2, tile_size=TILE, progress=False)
  whole = _spec().kernel(x1, x2, get=("nngp", "ntk"), dtype="float64")
  for g in ("nngp", "ntk"):
    np.testing.assert_allclose(tiled[g], whole[g], rtol=1e-12, atol=ATOL)
  assert len(spec.calls) == 3 * 2
  assert set(spec.calls) == {((TILE, DIM), (TILE, DIM))}  # every call padded to the full tile: one compile


@pytest.mark.backend_portable
def test_a_side_shorter_than_a_tile_is_not_padded():
  x1, x2 = _inputs()
  spec = CountingSpec(_spec())
  tiled = tiling.kernel_tiled(spec, x1, x2, tile_size=8, progress=False)  # rows: 8 + 2 (padded to 8); cols: 7
  whole = _spec().kernel(x1, x2, get=("nngp", "ntk"), dtype="float64")
  for g in ("nngp", "ntk"):
    np.testing.assert_allclose(tiled[g], whole[g], rtol=1e-12, atol=ATOL)
  assert set(spec.calls) == {((8, DIM), (N2, DIM))}
  spec.calls.clear()
  tiling.kernel_tiled(spec, x2, tile_size=64, progress=False)
  assert spec.calls == [((N2, DIM), (N2, DIM))]


@pytest.mark.backend_portable
def test_tiled_symmetric_computes_upper_triangle_only():
  x1, _ = _inputs()
  spec = CountingSpec(_spec())
  tiled = tiling.kernel_tiled(spec, x1, get="ntk", tile_size=TILE, progress=False)
  whole = _spec().kernel(x1, get="ntk", dtype="float64")
  np.testing.assert_allclose(tiled, whole, rtol=1e-12, atol=ATOL)
  np.testing.assert_array_equal(tiled, tiled.T)
  assert len(spec.calls) == 3 * 4 // 2  # tiles (i, j), j >= i, of a 3 x 3 grid


def test_tile_indices():
  assert tiling.tile_indices(5, None, 2) == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
  assert tiling.tile_indices(3, 5, 3) == [(0, 0), (0, 1)]


def test_resume_computes_only_missing_tiles(tmp_path):
  x1, _ = _inputs()
  total = len(tiling.tile_indices(N1, None, TILE))
  done = []

  def stop_after_two(i, j):
    done.append((i, j))
    if len(done) == 2:
      raise Interrupt

  first = CountingSpec(_spec())
  with pytest.raises(Interrupt):
    tiling.kernel_tiled(first, x1, tile_size=TILE, cache_dir=str(tmp_path), progress=False,
                        on_tile=stop_after_two)
  assert len(first.calls) == 2
  (key_dir,) = list(tmp_path.iterdir())
  assert sorted(p.name for p in key_dir.glob("tile_*.npz")) == sorted(f"tile_{i}_{j}.npz" for i, j in done)
  assert not list(key_dir.glob(".tile-*"))  # no temporary file left behind

  second = CountingSpec(_spec())
  resumed = tiling.kernel_tiled(second, x1, tile_size=TILE, cache_dir=str(tmp_path), progress=True)
  assert len(second.calls) == total - 2
  whole = _spec().kernel(x1, get=("nngp", "ntk"), dtype="float64")
  for g in ("nngp", "ntk"):
    np.testing.assert_allclose(resumed[g], whole[g], rtol=1e-12, atol=ATOL)

  third = CountingSpec(_spec())  # everything cached now
  again = tiling.kernel_tiled(third, x1, tile_size=TILE, cache_dir=str(tmp_path), progress=False)
  assert third.calls == []
  np.testing.assert_array_equal(again["ntk"], resumed["ntk"])


def test_cache_key_separates_inputs_dtype_tile_and_spec():
  x1, x2 = _inputs()
  spec = _spec()
  base = tiling.cache_key(spec, x1, None, ("nngp", "ntk"), "float64", TILE)
  assert base == tiling.cache_key(_spec(), x1.copy(), None, ("nngp", "ntk"), "float64", TILE)
  changed = [
      tiling.cache_key(spec, x1 + 1e-9, None, ("nngp", "ntk"), "float64", TILE),
      tiling.cache_key(spec, x1, x2, ("nngp", "ntk"), "float64", TILE),
      tiling.cache_key(spec, x1, None, ("ntk",), "float64", TILE),
      tiling.cache_key(spec, x1, None, ("nngp", "ntk"), "float32", TILE),
      tiling.cache_key(spec, x1, None, ("nngp", "ntk"), "float64", TILE + 1),
      tiling.cache_key(nets.serial(nets.Dense(w_std=1.5, b_std=0.2), nets.Erf(), nets.Dense(w_std=1.2, b_std=0.1)),
                       x1, None, ("nngp", "ntk"), "float64", TILE),
  ]
  assert len({base, *changed}) == 1 + len(changed)


_MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import os, threading
    import keras
    import numpy as np
    if keras.backend.backend() == "tensorflow":
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      def where():
        return tf.constant(0.0).device
    else:
      import jax
      def where():
        return str(list(jax.numpy.zeros(()).devices())[0])
    from harness import nets
    from harness.nets import backends, tiling

    class Spy:
      def __init__(self, spec):
        self.spec, self.seen, self.lock = spec, set(), threading.Lock()
      def describe(self):
        return repr(self.spec)
      def kernel(self, x1, x2=None, get=("nngp", "ntk"), dtype="float64"):
        with self.lock:
          self.seen.add(where())
        return self.spec.kernel(x1, x2, get=get, dtype=dtype)

    devices = backends.current().devices()
    assert len(devices) == 2, devices
    spec = nets.serial(nets.Dense(w_std=1.5, b_std=0.2), nets.Relu(), nets.Dense(w_std=1.2, b_std=0.1))
    x = np.random.default_rng(0).normal(size=(12, 5))
    spy = Spy(spec)
    tiled = tiling.kernel_tiled(spy, x, tile_size=3, progress=False)
    whole = spec.kernel(x, get=("nngp", "ntk"), dtype="float64")
    for g in ("nngp", "ntk"):
      np.testing.assert_allclose(tiled[g], whole[g], rtol=1e-12, atol=1e-12)
    assert len(spy.seen) == 2, spy.seen
    print("DEVICES", sorted(spy.seen))
""")


@pytest.mark.backend_portable
def test_tiles_spread_over_two_logical_cpu_devices():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
             XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip())
  result = subprocess.run([sys.executable, "-c", _MULTI_DEVICE_SCRIPT], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "DEVICES" in result.stdout
