"""harness.nets' module structure: no import cycles, no layer class in the evaluator."""
import ast
import pathlib

import keras
import pytest

from harness import nets
from harness.nets import _evaluate

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
