"""Float precisions the suite runs in, named once (runner flags, kernels, preprocessing, speed benchmarks)."""
from __future__ import annotations

DTYPES = ("float32", "float64")


def check_dtype(dtype: str, error: type[Exception] = ValueError, what: str = "dtype") -> str:
  """`dtype` if it is one of DTYPES, else `error` with one line naming the choices."""
  if dtype not in DTYPES:
    raise error(f"{what} must be one of {', '.join(DTYPES)}, got {dtype!r}")
  return dtype
