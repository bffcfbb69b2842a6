"""Shared setup for the harness.nets tests."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from harness import nets  # noqa: E402  (after the log level)

nets.configure_xla_cpu()  # as the CLI runs them: 512-bit XLA:CPU vectors under TensorFlow (harness.nets docstring)


@pytest.fixture(scope="session", autouse=True)
def _float64_backend():
  """float64 tensors available under every Keras backend (harness.nets also enables them on demand)."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  backends.current().enable_float64()
