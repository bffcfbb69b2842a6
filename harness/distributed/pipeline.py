"""Run the elements of a job as an Apache Beam pipeline, skipping those whose output is already stored.

A job (`ElementJob`) is a list of independent elements (kernel tiles, (width, seed) points of a sweep), each
with a file name and a function computing its arrays. `run_job` writes the job itself once into its folder
(`job-<digest>.pkl`: the spec and inputs workers need, read back in each worker's `setup`), then runs
`Create(remaining) | Reshuffle | ParDo(compute and store)` on the runner the pipeline options name: the
DirectRunner on this machine (several worker processes with `--direct_num_workers=N
--direct_running_mode=multi_processing`), or Dataflow, Flink, Spark on a cluster (WORKSPACE.md, "Many hosts").
Each element is written atomically (`storage`); a rerun after a crash or kill lists the folder and
schedules only the missing elements, and a worker also skips an element it finds stored (a retried bundle).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import re
import shlex
import sys
import tempfile
from typing import Hashable, Iterable, Sequence

import numpy as np

from harness.distributed import storage

JOB_FILE = "job-{digest}.pkl"   # the digest of the pickled job: jobs sharing a folder keep their own
COMPUTED, SKIPPED = "elements_computed", "elements_skipped"


class ElementJob:
  """Independent elements, each computed to a dict of arrays stored as `<job folder>/<file_name(e)>`."""

  def elements(self) -> Sequence[Hashable]:
    raise NotImplementedError

  def file_name(self, element) -> str:
    raise NotImplementedError

  def compute(self, element) -> dict[str, np.ndarray]:
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class JobSummary:
  total: int
  stored_before: int   # elements already stored when the run began: not scheduled
  computed: int        # elements computed by this run's workers (Beam counter)
  skipped: int         # scheduled elements a worker found stored (a concurrent run or a retried bundle)


def pipeline_options(options: str | Sequence[str] | None):
  """Beam PipelineOptions from a command line ('--runner=DirectRunner --direct_num_workers=2 ...')."""
  with _quiet_beam():   # importing Beam logs notices about optional Google Cloud clients
    from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  args = shlex.split(options) if isinstance(options, str) else list(options or ())
  return PipelineOptions(args)


def stored(job: ElementJob, folder) -> list:
  """The job's elements whose files exist (each subfolder of `folder` listed once)."""
  listed: dict[str, set[str]] = {}
  found = []
  for element in job.elements():
    sub, _, name = job.file_name(element).rpartition("/")
    if sub not in listed:
      listed[sub] = storage.names_in(storage.path(folder, sub) if sub else storage.path(folder))
    if name in listed[sub]:
      found.append(element)
  return found


# What Beam's worker processes and its local job service print on every run (they inherit stderr): dropped when the
# pipeline succeeds, shown in full when it fails. TensorFlow's start-up notices as in harness/__main__.py.
_WORKER_NOTICES = re.compile(
    r"^(INFO|DEBUG):|^WARNING:(apache_beam|__main__|root:apitools)"
    r"|All log messages before absl::InitializeLog\(\) is called|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized|To enable the following instructions|^\s*$"
    r"|apitools not found|google\.cloud\.bigquery_storage_v1|ReadFromBigQuery")


@contextlib.contextmanager
def _quiet_beam():
  """Beam's notices out of stderr (fd 2, which the worker processes inherit), kept when the pipeline fails."""
  sys.stderr.flush()
  saved, level = os.dup(2), logging.getLogger("apache_beam").level
  logging.getLogger("apache_beam").setLevel(logging.ERROR)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      logging.getLogger("apache_beam").setLevel(level)
      captured.seek(0)
      lines = captured.read().decode(errors="replace").splitlines(keepends=True)
      kept = lines if failed else [line for line in lines if not _WORKER_NOTICES.search(line)]
      if kept:
        sys.stderr.write("".join(kept))


def _compute_fn():
  import apache_beam as beam  # pylint: disable=import-outside-toplevel

  class ComputeElement(beam.DoFn):
    """Loads the job in each worker once; computes and stores one element per call."""

    def __init__(self, folder: str, job_file: str):
      super().__init__()
      self.folder, self.job_file = folder, job_file
      self.computed = beam.metrics.Metrics.counter("harness", COMPUTED)
      self.skipped = beam.metrics.Metrics.counter("harness", SKIPPED)

    def setup(self):
      self.job = pickle.loads(storage.path(self.folder, self.job_file).read_bytes())  # pylint: disable=attribute-defined-outside-init

    def process(self, element):
      target = storage.path(self.folder, self.job.file_name(element))
      if target.exists():
        self.skipped.inc()
        return
      storage.write_npz(target, self.job.compute(element))
      self.computed.inc()
      yield self.job.file_name(element)

  return ComputeElement


def run_job(job: ElementJob, folder: str, options: str | Sequence[str] | None = None) -> JobSummary:
  """Computes every element of `job` not yet stored in `folder` (created if missing) on Beam (module docstring)."""
  with _quiet_beam():
    import apache_beam as beam  # pylint: disable=import-outside-toplevel
    from apache_beam.metrics.metric import MetricsFilter  # pylint: disable=import-outside-toplevel
  folder = str(folder)
  storage.path(folder).mkdir(parents=True, exist_ok=True)
  elements = list(job.elements())
  pickled = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
  job_file = JOB_FILE.format(digest=hashlib.sha256(pickled).hexdigest()[:20])
  if not storage.path(folder, job_file).exists():
    storage.write_bytes(storage.path(folder, job_file), pickled)
  done = {job.file_name(e) for e in stored(job, folder)}
  remaining = [e for e in elements if job.file_name(e) not in done]
  counts = {COMPUTED: 0, SKIPPED: 0}
  if remaining:
    with _quiet_beam():
      pipeline = beam.Pipeline(options=pipeline_options(options))
      _ = (pipeline | "elements" >> beam.Create(remaining) | "spread" >> beam.Reshuffle()
           | "compute" >> beam.ParDo(_compute_fn()(folder, job_file)))
      result = pipeline.run()
      result.wait_until_finish()
    for name in counts:
      found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
      counts[name] = sum(c.committed or 0 for c in found)
  return JobSummary(total=len(elements), stored_before=len(done), computed=counts[COMPUTED], skipped=counts[SKIPPED])


def load(job: ElementJob, folder: str, elements: Iterable | None = None) -> dict:
  """{element: arrays} of the stored elements (all of the job's, or `elements`); KeyError naming a missing one."""
  out = {}
  for element in job.elements() if elements is None else elements:
    arrays = storage.read_npz(storage.path(folder, job.file_name(element)))
    if arrays is None:
      raise KeyError(f"element {element!r} of the job in {folder} is not stored (or unreadable)")
    out[element] = arrays
  return out
