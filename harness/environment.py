"""The environment fingerprint stored with every run: enough to tell two machines or stacks apart."""
from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "tensorflow-datasets", "numpy", "scipy", "jax", "jaxlib",
            "absl-py")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd: list[str]) -> str | None:
  try:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=REPO_ROOT)
  except (OSError, subprocess.SubprocessError):
    return None
  return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError):
    return None


def _versions() -> dict[str, str | None]:
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return versions


def git_state() -> dict[str, Any]:
  commit = _run(["git", "rev-parse", "HEAD"])
  status = _run(["git", "status", "--porcelain", "--untracked-files=no"])
  return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _nvidia_smi() -> list[dict[str, str]]:
  if not shutil.which("nvidia-smi"):
    return []
  out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
  gpus = []
  for line in (out or "").splitlines():
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 3:
      gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
  return gpus


def _op_determinism() -> bool:
  """Whether `--deterministic` (harness.nets.backends.enable_determinism) is in force for the active backend."""
  from harness.nets import backends  # pylint: disable=import-outside-toplevel
  return bool(backends.current().deterministic())


def _backend_state() -> dict[str, Any]:
  """Accelerators and numerics switches as the active Keras backend sees them."""
  import keras
  backend = keras.backend.backend()
  state: dict[str, Any] = {"keras_backend": backend, "keras_floatx": keras.backend.floatx()}
  if backend == "tensorflow":
    import tensorflow as tf
    build = tf.sysconfig.get_build_info()
    devices = tf.config.list_physical_devices()
    accelerators = [d for d in devices if d.device_type in ("GPU", "TPU")]
    state.update({
        "accelerator_kind": accelerators[0].device_type if accelerators else "none",
        "accelerator_count": len(accelerators),
        "accelerator_names": [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                              for d in accelerators],
        "cuda_version": build.get("cuda_version"),
        "cudnn_version": build.get("cudnn_version"),
        "tf32_enabled": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "op_determinism": _op_determinism(),
        "xla_jit_auto": tf.config.optimizer.get_jit() or "off",
        "tf_xla_flags": os.environ.get("TF_XLA_FLAGS", ""),
        # oneDNN custom ops (on by default on x86 CPUs) reorder float sums: results move in the last bits.
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)"),
    })
  elif backend == "jax":
    import jax
    devices = jax.devices()
    accelerators = [d for d in devices if d.platform != "cpu"]
    state.update({
        "accelerator_kind": accelerators[0].platform.upper() if accelerators else "none",
        "accelerator_count": len(accelerators),
        "accelerator_names": [getattr(d, "device_kind", str(d)) for d in accelerators],
        "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "tf32_enabled": str(jax.config.jax_default_matmul_precision) not in ("highest", "float32"),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "xla_jit_auto": "jit (jax)",
        "op_determinism": _op_determinism(),
    })
  return state


def _accelerator_memory_bytes() -> int | None:
  """The first accelerator's memory: nvidia-smi's total, else what JAX reports; None when unknown."""
  for gpu in _nvidia_smi():
    number, _, unit = gpu["memory"].partition(" ")
    scale = {"MiB": 2 ** 20, "GiB": 2 ** 30, "KiB": 2 ** 10}.get(unit)
    if scale and number.isdigit():
      return int(number) * scale
  import keras
  if keras.backend.backend() == "jax":
    import jax
    for device in jax.devices():
      if device.platform != "cpu":
        try:
          return int((device.memory_stats() or {}).get("bytes_limit")) or None
        except (TypeError, ValueError, NotImplementedError):
          return None
  return None


def hardware() -> dict[str, Any]:
  """CPU cores, memory and accelerators (as the Keras backend sees them): what the pre-flight checks."""
  state = _backend_state()
  info = {"cpu_cores": os.cpu_count(), "memory_bytes": _memory_bytes(),
          **{k: state[k] for k in ("accelerator_kind", "accelerator_count", "accelerator_names") if k in state}}
  if info.get("accelerator_count"):
    info["accelerator_memory_bytes"] = _accelerator_memory_bytes()
  return info


def fingerprint(dtype: str | None = None) -> dict[str, Any]:
  """Host, CPU, memory, accelerators, versions, numerics switches, git state and (with a dtype) the matmul
  throughputs in it on the backend's device and on the host (harness/calibration.py: the units runtimes are
  scaled by)."""
  info: dict[str, Any] = {
      "host": socket.gethostname(),
      "platform": platform.platform(),
      "cpu_model": _cpu_model(),
      "cpu_cores": os.cpu_count(),
      "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "memory_bytes": _memory_bytes(),
      "gpus_nvidia_smi": _nvidia_smi(),
      "versions": _versions(),
      "float_precision": dtype,
      "python_executable": sys.executable,
      "git": git_state(),
  }
  info.update(_backend_state())
  if dtype is not None:
    from harness import calibration
    info["matmul_gflops"] = {dtype: calibration.matmul_gflops(dtype)}
    info["host_matmul_gflops"] = {dtype: calibration.host_matmul_gflops(dtype)}
  return info


def one_line(env: dict[str, Any]) -> str:
  """A short summary used in tables: accelerator or CPU, backend, precision."""
  accel = env.get("accelerator_names") or []
  device = f"{env.get('accelerator_count')}x {accel[0]}" if accel else f"{env.get('cpu_model')} ({env.get('cpu_cores')} cores)"
  versions = env.get("versions", {})
  tf_version = versions.get("tensorflow") or versions.get("tensorflow-cpu") or "-"
  return (f"{device}; keras {versions.get('keras')} / {env.get('keras_backend')} (tf {tf_version}); "
          f"{env.get('float_precision')}; tf32 {'on' if env.get('tf32_enabled') else 'off'}")
