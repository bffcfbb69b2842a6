"""Entry point: python -m harness COMMAND [flags] (see harness/cli.py).

TensorFlow's native code writes start-up notices to file descriptor 2 when it is imported ("All log
messages before absl::InitializeLog() ...", "oneDNN custom operations are on ..."), whatever
TF_CPP_MIN_LOG_LEVEL says. A CLI whose errors are one line on stderr cannot have those, so TensorFlow is
imported here with fd 2 captured; the known notices are dropped and anything else is written back.
Whether oneDNN was on goes into every run record (harness/environment.py).
"""
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_START_UP_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|oneDNN custom operations are on"
    r"|This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation placer already registered"
    r"|Could not find cuda drivers on your machine")


def _import_tensorflow_quietly() -> None:
  """import tensorflow (if installed) with its native start-up notices filtered out of stderr."""
  if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    return
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as captured:
    os.dup2(captured.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
      pass  # the commands that need it say so
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
              if line.strip() and not _START_UP_NOTICES.search(line)]
      if kept:
        sys.stderr.write("".join(kept))


if __name__ == "__main__":
  _import_tensorflow_quietly()
  from harness.cli import run_cli  # pylint: disable=wrong-import-position
  run_cli()
