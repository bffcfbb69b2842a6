"""harness.nets' module structure: no import cycles, no layer class in the evaluator, no process state on import."""
import ast
import logging
import os
import pathlib
import subprocess
import sys

import keras
import pytest

from harness import nets
from harness.nets import _evaluate
from harness.nets import backends

pytestmark = pytest.mark.backend_portable

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness" / "nets"


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
  """{module: harness.nets modules it imports anywhere in its source, function bodies included}."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
      else:
        continue
      # `from harness.nets import _kernel` imports the module _kernel; `from harness.nets._kernel import X` _kernel
      edges.update(t for t in targets if t in modules and t != name and not name.startswith(t + "."))
    graph[name] = edges - {"harness.nets"}  # the package itself: only its __init__ imports the others
  return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  found, state = [], {}

  def visit(node, path):
    state[node] = "open"
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        found.append(path[path.index(nxt):] + [nxt])
      elif nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])
  return found


def test_harness_nets_has_no_import_cycle():
  graph = _import_graph()
  assert "harness.nets._evaluate" in graph["harness.nets._spec"]  # the graph sees the imports
  assert _cycles(graph) == []


def test_the_evaluator_imports_no_layer_class():
  """The planner asks the layers (harness/nets/_spec.py docstring); a new layer is taught in _spec.py alone."""
  graph = _import_graph()
  reachable, todo = set(), ["harness.nets._evaluate"]
  while todo:
    for nxt in graph[todo.pop()] - reachable:
      reachable.add(nxt)
      todo.append(nxt)
  assert "harness.nets._spec" not in reachable
  layers = (nets.Layer, keras.layers.Layer)
  held = [name for name, value in vars(_evaluate).items() if isinstance(value, type) and issubclass(value, layers)]
  assert held == []


def _environment(**changes) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(changes)
  return env


_REPORT = ("import os, logging, harness.nets as nets; nets.backends.current(); "
           "print(os.environ.get('XLA_FLAGS')); print(len(logging.getLogger('tensorflow').filters))")


@pytest.mark.parametrize("flags", [None, "--xla_dump_to=/tmp/x"])
def test_importing_harness_nets_changes_no_process_state(flags):
  env = _environment() if flags is None else _environment(XLA_FLAGS=flags)
  out = subprocess.run([sys.executable, "-c", _REPORT], cwd=ROOT, env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  assert out == [str(flags), "0"]


def test_configure_xla_cpu_sets_the_vector_width_and_keeps_one_set(monkeypatch):
  width = f"--xla_cpu_prefer_vector_width={backends.CPU_VECTOR_WIDTH}"
  tensorflow = keras.backend.backend() == "tensorflow"
  environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x"}
  nets.configure_xla_cpu(environ)
  nets.configure_xla_cpu(environ)  # idempotent
  assert environ["XLA_FLAGS"] == (f"--xla_dump_to=/tmp/x {width}" if tensorflow else "--xla_dump_to=/tmp/x")
  explicit = {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}
  nets.configure_xla_cpu(explicit)
  assert explicit == {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=256"}
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  nets.configure_xla_cpu()  # os.environ
  assert os.environ.get("XLA_FLAGS") == (width if tensorflow else None)
  if tensorflow:
    noise = [f for f in logging.getLogger("tensorflow").filters if type(f).__name__ == "_DropKnownNoise"]
    assert len(noise) == 1
