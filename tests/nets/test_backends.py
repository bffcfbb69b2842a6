"""harness.nets.backends: the XLA:CPU vector-width preference (module docstring there; `configure_xla_cpu`:
test_imports.py)."""
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
