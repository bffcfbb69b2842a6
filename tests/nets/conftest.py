"""Shared setup for the harness.nets tests."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def _float64_backend():
  """float64 tensors available under every Keras backend (harness.nets also enables them on demand)."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  backends.current().enable_float64()
