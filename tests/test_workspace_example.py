"""WORKSPACE.md's smallest complete experiment ("How to add an experiment") runs and its claim passes."""
import os
import re
import types

from tests.benchmarks import helpers

WORKSPACE = os.path.join(helpers.REPO, "WORKSPACE.md")


def test_the_documented_smallest_experiment_runs(tmp_path):
  with open(WORKSPACE, encoding="utf-8") as f:
    text = f.read()
  code = re.search(r"## How to add an experiment.*?```python\n(.*?)```", text, re.S).group(1)
  module = types.ModuleType("workspace_example")
  exec(compile(code, WORKSPACE, "exec"), module.__dict__)  # pylint: disable=exec-used
  record = helpers.run_tiny(module.EXPERIMENT, module.smoke, str(tmp_path / "run"), "workspace_example")
  assert [c["passed"] for c in record["claims"]] == [True]
  assert record["metrics"]["mc_variance/n=10000"]["seeds"] == [0, 1, 2, 3]
