"""The machine a neural-tangents record was measured on, in the form both sides compare (standard library only:
imported by bench_nt.py in the NT environment and by the harness's kernel benchmark in the project's)."""
from __future__ import annotations

import json
import pathlib
import platform
import subprocess
import sys

LSCPU_FIELDS = ("CPU family", "Model", "Stepping", "L2 cache", "L3 cache", "Hypervisor vendor")


def cpu_model(lscpu: str | None = None) -> str:
  """`lscpu`'s model name with family, model, stepping, caches and hypervisor (platform.processor() without lscpu);
  `lscpu`: its output, else it is run."""
  if lscpu is None:
    try:
      lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
      return platform.processor()
  fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lscpu.splitlines() if ":" in line)}
  details = ", ".join(f"{key.lower()} {fields[key]}" for key in LSCPU_FIELDS if key in fields)
  return f"{fields.get('Model name', '')} ({details})"


def check_record(path: pathlib.Path, env: dict) -> None:
  """Exit 2 with one line, before anything is timed, if `path` holds runs of another machine or stack: a record is
  one environment's, and its runs are never replaced (another machine's runs go to a file of their own)."""
  if not path.exists():
    return
  try:
    recorded = json.loads(path.read_text())["environment"]
    differing = sorted(key for key in set(env) | set(recorded) if recorded.get(key) != env.get(key))
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    _refuse(f"--record={path} is not a bench_nt record ({error!r}); pass a new file")
  if differing:
    _refuse(f"--record={path} holds runs of another machine or stack (differs in {', '.join(differing)}); "
            "pass --record=<a new file> for this one")


def _refuse(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
