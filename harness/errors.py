"""Errors a user can fix: the CLI prints them on one line and exits with status 2."""


class HarnessError(Exception):
  """Bad input (flags, files, datasets): one line for the user, no traceback."""


class ReferenceFileError(HarnessError):
  """A reference file is missing or malformed; the message names the file and the field."""


class RunDirError(HarnessError):
  """A run directory is missing, incomplete, or would be overwritten."""
