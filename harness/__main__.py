"""Entry point: python -m harness COMMAND [flags] (see harness/cli.py)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from harness.cli import run_cli  # pylint: disable=wrong-import-position

if __name__ == "__main__":
  run_cli()
