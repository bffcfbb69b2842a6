"""Scaling past one process: kernel tiles and sweep points as elements of an Apache Beam pipeline.

Beam is the engine TFDS itself uses for large datasets, and its pinned dependencies live with TensorFlow 2.21
in one environment (apache-beam 2.78: protobuf 6.33, pyarrow 25). The same pipeline runs on the DirectRunner here
(CI: several worker processes) and on Dataflow, Flink or Spark (WORKSPACE.md, "Many hosts").

  engine.Engine         where a run computes kernels (local | beam), from the CLI's --engine flags
  kernels.kernel_job    a kernel matrix from tiles computed on Beam, shared with nets.kernel_tiled's cache
  sweeps.PointJob       (width, seed, ...) points of a sweep, one result file each
  pipeline.run_job      any ElementJob: skip what is stored, compute the rest, count both
"""
from harness.distributed.engine import ENGINES, Engine
from harness.distributed.kernels import KernelTileJob, kernel_job
from harness.distributed.pipeline import ElementJob, JobSummary, load, run_job
from harness.distributed.sweeps import PointJob

__all__ = ["ENGINES", "ElementJob", "Engine", "JobSummary", "KernelTileJob", "PointJob", "kernel_job", "load",
           "run_job"]
