"""Run records: atomic writes, schema validation, run directories that are never overwritten."""
import json
import os
import stat

import pytest

from harness import records
from harness.errors import RunDirError


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
  path = str(tmp_path / "results.json")
  records.write_json_atomic(path, {"a": 1})

  def broken_dump(obj, f, **kwargs):
    f.write('{"a": 2, "trunc')  # a partial write, then the process "dies"
    raise KeyboardInterrupt

  monkeypatch.setattr(json, "dump", broken_dump)
  with pytest.raises(KeyboardInterrupt):
    records.write_json_atomic(path, {"a": 2})
  monkeypatch.undo()
  assert json.load(open(path)) == {"a": 1}
  assert os.listdir(tmp_path) == ["results.json"]


def test_atomic_write_nan_as_string(tmp_path):
  path = str(tmp_path / "x.json")
  records.write_json_atomic(path, {"v": [float("nan"), 1.0]})
  assert json.load(open(path)) == {"v": ["nan", 1.0]}


def test_prepare_run_dir_refuses_used_dir(tmp_path):
  fresh = str(tmp_path / "run")
  records.prepare_run_dir(fresh)
  records.prepare_run_dir(fresh)  # empty: fine
  open(os.path.join(fresh, "results.json"), "w").write("{}")
  with pytest.raises(RunDirError, match="already holds a run"):
    records.prepare_run_dir(fresh)


def minimal_record():
  return {"schema": "harness.results", "schema_version": 1, "run_id": "r", "experiment": "toy", "tier": "smoke",
          "status": "complete", "config": {}, "seeds": [0], "dtype": "float32",
          "metrics": {"m": {"values": [1.0], "seeds": [0]}}, "claims": [], "phases": {}, "environment": {}}


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r.pop("environment"), "missing field(s) environment"),
    (lambda r: r.update(schema_version=99), "schema_version 99"),
    (lambda r: r.update(status="running"), "status"),
    (lambda r: r["metrics"]["m"].update(values=[1.0, 2.0]), "differ in length"),
    (lambda r: r["metrics"]["m"].update(values=["x"]), "non-number"),
])
def test_validate(mutate, message, tmp_path):
  record = minimal_record()
  records.validate(record, "ok")
  mutate(record)
  with pytest.raises(RunDirError, match=message.replace("(", r"\(").replace(")", r"\)")):
    records.validate(record, "results.json")


def test_load_incomplete_run(tmp_path):
  with pytest.raises(RunDirError, match="did not finish"):
    records.load(str(tmp_path))
  with pytest.raises(RunDirError, match="no run directory"):
    records.load(str(tmp_path / "nope"))


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
  # mkstemp creates 0600 files; a record must be as readable as any file the user writes (0666 & ~umask)
  path = str(tmp_path / "results.json")
  records.write_json_atomic(path, {"a": 1})
  mask = os.umask(0)
  os.umask(mask)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
