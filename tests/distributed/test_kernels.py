"""The distributed kernel job (Beam, DirectRunner): equal to spec.kernel, several worker processes, resumes after a
kill and from nets.kernel_tiled's cache without recomputing finished tiles."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from harness import distributed, nets
from harness.distributed import kernels, pipeline
from harness.nets import tiling
from tests.distributed import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWO_WORKERS = "--runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing"
IN_PROCESS = "--runner=DirectRunner --direct_num_workers=1 --direct_running_mode=in_memory"
RTOL = 1e-12   # a tile is spec.kernel on a subset of the inputs: same operations per entry, rounding aside


def _assert_equal_to_whole(result, spec, x1, x2=None):
  whole = spec.kernel(x1, x2, get=("nngp", "ntk"), dtype="float64")
  for g in ("nngp", "ntk"):
    np.testing.assert_allclose(result[g], whole[g], rtol=RTOL, atol=RTOL * np.abs(whole[g]).max())


def test_two_worker_processes_assemble_spec_kernel(tmp_path):
  x1, x2 = helpers.images(10), helpers.images(7, seed=1)
  spec = helpers.cnn_spec()
  result, summary = kernels.kernel_job(spec, x1, x2, tile_size=4, work_dir=str(tmp_path), options=TWO_WORKERS)
  assert summary == pipeline.JobSummary(total=3 * 2, stored_before=0, computed=6, skipped=0)
  _assert_equal_to_whole(result, spec, x1, x2)
  symmetric, summary = kernels.kernel_job(spec, x1, None, tile_size=4, work_dir=str(tmp_path), options=IN_PROCESS)
  assert summary.total == 6 and summary.computed == 6   # upper triangle of 3 x 3 tiles
  _assert_equal_to_whole(symmetric, spec, x1)
  again, summary = kernels.kernel_job(spec, x1, None, tile_size=4, work_dir=str(tmp_path), options=IN_PROCESS)
  assert (summary.stored_before, summary.computed) == (6, 0)
  np.testing.assert_array_equal(again["ntk"], symmetric["ntk"])


def test_resumes_kernel_tiled_cache_and_the_other_way(tmp_path):
  x = helpers.images(10)
  spec = helpers.cnn_spec()

  def stop_after_two(i, j, done=[]):   # pylint: disable=dangerous-default-value
    done.append((i, j))
    if len(done) == 2:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    nets.kernel_tiled(spec, x, tile_size=4, cache_dir=str(tmp_path), progress=False, devices=[None],
                      on_tile=stop_after_two)
  result, summary = kernels.kernel_job(spec, x, tile_size=4, work_dir=str(tmp_path), options=IN_PROCESS)
  assert (summary.stored_before, summary.computed) == (2, 4)
  _assert_equal_to_whole(result, spec, x)
  counting = CountingSpec(spec)
  local = nets.kernel_tiled(counting, x, tile_size=4, cache_dir=str(tmp_path), progress=False)
  assert counting.calls == 0
  np.testing.assert_array_equal(local["nngp"], result["nngp"])


class CountingSpec:
  def __init__(self, spec):
    self.spec, self.calls = spec, 0

  def describe(self):
    return self.spec.describe()

  def kernel(self, *args, **kwargs):
    self.calls += 1
    return self.spec.kernel(*args, **kwargs)


_KILLED_RUN = textwrap.dedent("""
    import sys
    from harness.distributed import kernels
    from tests.distributed import helpers
    kernels.kernel_job(helpers.SlowSpec(helpers.cnn_spec()), helpers.images(12), tile_size=3, work_dir=sys.argv[1],
                       options=sys.argv[2])
""")


def test_a_killed_run_resumes_without_recomputing_finished_tiles(tmp_path):
  """SIGKILL a run (its whole process group; the DirectRunner in process) once two tiles are stored; the rerun
  computes only the rest, and the assembled kernel equals spec.kernel."""
  spec, x = helpers.cnn_spec(), helpers.images(12)
  grid = tiling.TileGrid.make(spec, x, None, ("nngp", "ntk"), "float64", 3)
  folder = tmp_path / grid.key
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  run = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(tmp_path), IN_PROCESS], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
  deadline = time.monotonic() + 240
  try:
    while len(list(folder.glob("tile_*.npz"))) < 2:
      assert run.poll() is None, run.stderr.read().decode()[-3000:]
      assert time.monotonic() < deadline, "no tiles stored in 240 s"
      time.sleep(0.1)
  finally:
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
  finished = len(list(folder.glob("tile_*.npz")))
  total = len(grid.indices())
  assert 2 <= finished < total, (finished, total)
  result, summary = kernels.kernel_job(spec, x, tile_size=3, work_dir=str(tmp_path), options=IN_PROCESS)
  assert (summary.stored_before, summary.computed, summary.skipped) == (finished, total - finished, 0)
  _assert_equal_to_whole(result, spec, x)


def test_engines_give_the_same_kernel(tmp_path):
  x1, x2 = helpers.images(6), helpers.images(5, seed=2)
  spec = helpers.cnn_spec()
  local = distributed.Engine("local").kernel(spec, x1, x2, ("nngp", "ntk"), "float64", tile_size=4)
  beam = distributed.Engine("beam", IN_PROCESS).kernel(spec, x1, x2, ("nngp", "ntk"), "float64", tile_size=4)
  np.testing.assert_array_equal(local["ntk"], beam["ntk"])
  cached = distributed.Engine("local", work_dir=str(tmp_path)).kernel(spec, x1, x2, ("ntk",), "float64", 4)
  assert len(list(tmp_path.glob("*/tile_*.npz"))) == 4
  np.testing.assert_array_equal(cached["ntk"], local["ntk"])
  with pytest.raises(ValueError, match="engine must be one of"):
    distributed.Engine("spark")
  with pytest.raises(ValueError, match="--engine=beam"):
    distributed.Engine("local", pipeline_options="--runner=DirectRunner")
