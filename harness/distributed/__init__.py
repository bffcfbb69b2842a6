"""Scaling past one process: kernel tiles and sweep points as elements of an Apache Beam pipeline.

Beam is the engine TFDS itself uses for large datasets, and its pinned dependencies live with TensorFlow 2.21
in one environment (apache-beam 2.78: protobuf 6.33, pyarrow 25). The same pipeline runs on the DirectRunner here
(CI: several worker processes) and on Dataflow, Flink or Spark (WORKSPACE.md, "Many hosts").

  engine.Engine         where a run computes kernels (local | beam), from the CLI's --engine flags
  kernels.kernel_jobs   the tiles of many kernel matrices as one pipeline; kernels.assemble reads one back
  kernels.kernel_job    one kernel matrix from tiles computed on Beam, shared with nets.kernel_tiled's cache
  sweeps.PointJob       (width, seed, ...) points of a sweep, one result file each
  pipeline.run_job      any ElementJob: skip what is stored, compute the rest, count both
"""
from harness.distributed.engine import ENGINES, Engine
from harness.distributed.pipeline import ElementJob, JobSummary, load, run_job
from harness.distributed.sweeps import PointJob


def __getattr__(name: str):
  """kernel_job and KernelTileJob import Keras (through harness.nets): only when asked for."""
  if name in ("kernel_job", "KernelTileJob"):
    from harness.distributed import kernels  # pylint: disable=import-outside-toplevel
    return getattr(kernels, name)
  raise AttributeError(name)

__all__ = ["ENGINES", "ElementJob", "Engine", "JobSummary", "KernelTileJob", "PointJob", "kernel_job", "load",
           "run_job"]
