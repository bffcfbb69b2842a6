"""The one exception of the data layer: a dataset the user asked for cannot be served as asked."""
from __future__ import annotations

from harness.errors import HarnessError


class DataError(HarnessError):
  """Unknown dataset, unavailable offline, checksum mismatch, request beyond a mirror, bad mirror spec.

  The message is one line that says what to fix; the CLI prints it and exits with status 2.
  """
