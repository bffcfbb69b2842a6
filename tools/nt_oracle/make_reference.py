"""Writes tests/nets/testdata/nt_reference.npz: neural-tangents NNGP/NTK kernels as an independent oracle.

Runs in its OWN virtual environment (never the project's .venv), see tools/nt_oracle/README.md:

    /tmp/ntvenv/bin/python tools/nt_oracle/make_reference.py

Every case is an NT `stax` network in NTK parameterization (Jacot et al. 2018, arXiv 1806.07572, p. 3;
NT: Novak et al. 2020, arXiv 1912.02803) evaluated in float64 with `kernel_fn(x1, x2, ("nngp", "ntk"))`.
For each case the file holds `<case>/x1`, `<case>/x2`, `<case>/nngp_11`, `<case>/ntk_11`,
`<case>/nngp_12`, `<case>/ntk_12` (11 = kernel_fn(x1, None), 12 = kernel_fn(x1, x2)), plus
`<case>/ntk_11_diagonal_exact` (the diagonal of NTK(x1, x1) from the numpy recursion below, whose ReLU angle is
exactly 0 there; see DIAGONAL_NTK_RTOL), `<case>/nt_spec` and `<case>/harness_spec` (the spec as source
text) and `meta/json` (versions, date).

Before writing, the script checks NT against itself and against closed forms so the oracle's conventions are
pinned, not assumed:
  * fc_relu / fc_erf NNGP and NTK against a numpy recursion of the arc-cosine (Cho & Saul 2009, degree 1)
    and arcsine (Williams 1997) kernels with Dense: K <- w_std^2 K + b_std^2 (Lee et al. 2018,
    arXiv 1711.00165) and NTK <- K' + w_std^2 * NTK * Kdot (Jacot et al. 2018; Arora et al. 2019,
    arXiv 1904.11955; NTK parameterization);
  * resnet_relu / resnet_erf against the same recursion with residual sums (`closed_form_resnet`);
  * the four CNN cases against a numpy recursion over full spatial covariances (`closed_form_cnn`), which
    pins NT's Conv 'SAME' zero padding / filter averaging, strided padding, Flatten and GlobalAvgPool;
  * kernel_fn(x1, None) equals kernel_fn(x1, x1);
  * the residual branch scale s, stored as W_std = s of the branch's Dense (b_std = 0), agrees with the
    same scale applied to the nonlinearity's output instead (see `resnet`).
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import sys
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
OUTPUT_PATH = REPO_ROOT / "tests" / "nets" / "testdata" / "nt_reference.npz"

SEED = 20240601
SQRT2 = float(np.sqrt(2.0))
HIDDEN_WIDTH = 512  # ignored by NT's kernel_fn in NTK parameterization
CONV_CHANNELS = 64  # ignored likewise
FC_INPUT_DIM = 12
FC_N1, FC_N2 = 6, 5
IMAGE_SHAPE = (6, 6, 3)
IMAGE_N1, IMAGE_N2 = 4, 3
RESIDUAL_BLOCKS = 4
RESIDUAL_SCALE = 1.0 / np.sqrt(RESIDUAL_BLOCKS)
# Self-consistency tolerances (float64; the oracle must agree with closed forms to near round-off).
CLOSED_FORM_RTOL = 1e-12
SELF_RTOL = 1e-13
# Except the diagonal of NTK(x1, x1) for ReLU nets: NT takes the ReLU angle as arctan2(sqrt(k11 k22 - k12^2),
# k12); where x = x' the radicand should be 0 but is a few ulps whenever NT's variance and covariance paths
# round differently (they do in its diagonal-spatial CNN and residual kernels), giving an angle ~1e-8 and a
# relative NTK error up to ~1e-9 on that diagonal (measured up to 1.3e-9 here). The NNGP is unaffected.
DIAGONAL_NTK_RTOL = 1e-8
# FanInSum warns that it cannot verify independent branches; every branch here ends in a Dense.
warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
PACKAGES = ("neural-tangents", "jax", "jaxlib", "tf2jax", "tensorflow-cpu", "tensorflow", "numpy", "scipy")


def fc(nonlinearity, w_std, b_std, depth=3):
  return stax.serial(
      *[stax.serial(stax.Dense(HIDDEN_WIDTH, W_std=w_std, b_std=b_std), nonlinearity())
        for _ in range(depth)],
      stax.Dense(1, W_std=w_std, b_std=b_std))


def cnn(pool, strides=(1, 1), depth=2):
  conv_block = stax.serial(
      stax.Conv(CONV_CHANNELS, (3, 3), strides=strides, padding="SAME", W_std=SQRT2, b_std=0.1),
      stax.Relu())
  return stax.serial(*[conv_block] * depth, pool, stax.Dense(1, W_std=SQRT2, b_std=0.1))


def resnet(nonlinearity, scale_as="w_std"):
  """Dense(1, 0) -> 4 x [x + s * (nonlinearity -> Dense(1, 0))] -> Dense(1, 0.1) readout, s = 1/sqrt(4).

  NT has no plain "multiply by s" layer that its `FanInSum` accepts (FanInSum needs every branch to end in a
  Gaussian layer, so a trailing `ABRelu(s, s)` is refused), hence s is applied in one of two exactly
  equivalent ways, both equal to x + s * Dense_{W_std=1, b_std=0}(phi(x)) because that Dense is linear with
  no bias:
    "w_std": folded into the branch's Dense as W_std = s (the stored reference);
    "phi":   folded into the nonlinearity's output, ABRelu(0, s) = s * relu, Erf(a=s) = s * erf (cross-check).
  """
  if scale_as == "w_std":
    branch = stax.serial(nonlinearity(), stax.Dense(HIDDEN_WIDTH, W_std=RESIDUAL_SCALE, b_std=0.0))
  elif scale_as == "phi":
    scaled = (stax.ABRelu(0.0, RESIDUAL_SCALE) if nonlinearity is stax.Relu
              else stax.Erf(a=RESIDUAL_SCALE))
    branch = stax.serial(scaled, stax.Dense(HIDDEN_WIDTH, W_std=1.0, b_std=0.0))
  else:
    raise ValueError(scale_as)
  block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), branch), stax.FanInSum())
  return stax.serial(stax.Dense(HIDDEN_WIDTH, W_std=1.0, b_std=0.0), *[block] * RESIDUAL_BLOCKS,
                     stax.Dense(1, W_std=1.0, b_std=0.1))


# name -> (NT network builder, input kind, NT spec text, harness spec text)
CASES = {
    "fc_relu": (
        lambda: fc(stax.Relu, SQRT2, 0.1), "vector",
        "stax.serial(*[stax.serial(stax.Dense(512, W_std=sqrt(2), b_std=0.1), stax.Relu())] * 3, "
        "stax.Dense(1, W_std=sqrt(2), b_std=0.1))",
        "nets.serial(nets.repeat(nets.serial(nets.Dense(w_std=sqrt(2), b_std=0.1), nets.Relu()), 3), "
        "nets.Dense(w_std=sqrt(2), b_std=0.1))"),
    "fc_erf": (
        lambda: fc(stax.Erf, 1.5, 0.05), "vector",
        "stax.serial(*[stax.serial(stax.Dense(512, W_std=1.5, b_std=0.05), stax.Erf())] * 3, "
        "stax.Dense(1, W_std=1.5, b_std=0.05))",
        "nets.serial(nets.repeat(nets.serial(nets.Dense(w_std=1.5, b_std=0.05), nets.Erf()), 3), "
        "nets.Dense(w_std=1.5, b_std=0.05))"),
    "cnn_flatten_relu": (
        lambda: cnn(stax.Flatten()), "image",
        "stax.serial(*[stax.serial(stax.Conv(64, (3, 3), strides=(1, 1), padding='SAME', W_std=sqrt(2), "
        "b_std=0.1), stax.Relu())] * 2, stax.Flatten(), stax.Dense(1, W_std=sqrt(2), b_std=0.1))",
        "nets.serial(nets.repeat(nets.serial(nets.Conv(filter_size=3, w_std=sqrt(2), "
        "b_std=0.1, strides=1, padding='SAME'), nets.Relu()), 2), nets.Flatten(), "
        "nets.Dense(w_std=sqrt(2), b_std=0.1))"),
    "cnn_gap_relu": (
        lambda: cnn(stax.GlobalAvgPool()), "image",
        "stax.serial(*[stax.serial(stax.Conv(64, (3, 3), strides=(1, 1), padding='SAME', W_std=sqrt(2), "
        "b_std=0.1), stax.Relu())] * 2, stax.GlobalAvgPool(), stax.Dense(1, W_std=sqrt(2), b_std=0.1))",
        "nets.serial(nets.repeat(nets.serial(nets.Conv(filter_size=3, w_std=sqrt(2), "
        "b_std=0.1, strides=1, padding='SAME'), nets.Relu()), 2), nets.GlobalAvgPool(), "
        "nets.Dense(w_std=sqrt(2), b_std=0.1))"),
    "cnn_strided": (
        lambda: cnn(stax.Flatten(), strides=(2, 2), depth=1), "image",
        "stax.serial(stax.Conv(64, (3, 3), strides=(2, 2), padding='SAME', W_std=sqrt(2), b_std=0.1), "
        "stax.Relu(), stax.Flatten(), stax.Dense(1, W_std=sqrt(2), b_std=0.1))",
        "nets.serial(nets.Conv(filter_size=3, w_std=sqrt(2), b_std=0.1, strides=2, padding='SAME'), "
        "nets.Relu(), nets.Flatten(), nets.Dense(w_std=sqrt(2), b_std=0.1))"),
    "cnn_strided2": (
        lambda: cnn(stax.Flatten(), strides=(2, 2), depth=2), "image",
        "stax.serial(*[stax.serial(stax.Conv(64, (3, 3), strides=(2, 2), padding='SAME', W_std=sqrt(2), "
        "b_std=0.1), stax.Relu())] * 2, stax.Flatten(), stax.Dense(1, W_std=sqrt(2), b_std=0.1))",
        "nets.serial(nets.repeat(nets.serial(nets.Conv(filter_size=3, w_std=sqrt(2), "
        "b_std=0.1, strides=2, padding='SAME'), nets.Relu()), 2), nets.Flatten(), "
        "nets.Dense(w_std=sqrt(2), b_std=0.1))"),
    "resnet_relu": (
        lambda: resnet(stax.Relu), "vector",
        "block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(stax.Relu(), "
        "stax.Dense(512, W_std=1/sqrt(4), b_std=0))), stax.FanInSum()); "
        "stax.serial(stax.Dense(512, W_std=1, b_std=0), *[block] * 4, stax.Dense(1, W_std=1, b_std=0.1))",
        "nets.serial(nets.Dense(w_std=1.0, b_std=0.0), nets.repeat(nets.residual(nets.serial(nets.Relu(), "
        "nets.Dense(w_std=1.0, b_std=0.0)), branch_scale=1/sqrt(4)), 4), nets.Dense(w_std=1.0, b_std=0.1))"),
    "resnet_erf": (
        lambda: resnet(stax.Erf), "vector",
        "block = stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), stax.serial(stax.Erf(), "
        "stax.Dense(512, W_std=1/sqrt(4), b_std=0))), stax.FanInSum()); "
        "stax.serial(stax.Dense(512, W_std=1, b_std=0), *[block] * 4, stax.Dense(1, W_std=1, b_std=0.1))",
        "nets.serial(nets.Dense(w_std=1.0, b_std=0.0), nets.repeat(nets.residual(nets.serial(nets.Erf(), "
        "nets.Dense(w_std=1.0, b_std=0.0)), branch_scale=1/sqrt(4)), 4), nets.Dense(w_std=1.0, b_std=0.1))"),
}


def make_inputs(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  if kind == "vector":
    return (rng.standard_normal((FC_N1, FC_INPUT_DIM)), rng.standard_normal((FC_N2, FC_INPUT_DIM)))
  return (rng.standard_normal((IMAGE_N1,) + IMAGE_SHAPE), rng.standard_normal((IMAGE_N2,) + IMAGE_SHAPE))


def nt_kernels(kernel_fn, x1, x2):
  k = kernel_fn(jnp.asarray(x1), None if x2 is None else jnp.asarray(x2), ("nngp", "ntk"))
  return np.asarray(k.nngp, np.float64), np.asarray(k.ntk, np.float64)


def phi_kernel(nonlinearity, k12, k11, k22, same):
  """(E phi(u) phi(v), E phi'(u) phi'(v), E phi(u)^2, E phi(v)^2) for (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

  ReLU: arc-cosine kernel of degree 1 (Cho & Saul 2009); erf: arcsine kernel (Williams 1997). When `same`
  (x2 is x1) the ReLU angle on the diagonal is set to exactly 0 (arccos of a cosine one ulp below 1 is
  ~1.5e-8, which would put a spurious ~1e-9 relative error on the diagonal of the NTK).
  """
  norms = np.sqrt(np.outer(k11, k22))
  if nonlinearity == "relu":
    cos = np.clip(k12 / norms, -1.0, 1.0)
    theta = np.arccos(cos)
    if same:
      np.fill_diagonal(theta, 0.0)
    return (norms * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi), (np.pi - theta) / (2 * np.pi),
            k11 / 2, k22 / 2)
  denom = np.sqrt(np.outer(1 + 2 * k11, 1 + 2 * k22))
  return (2 / np.pi * np.arcsin(2 * k12 / denom), 4 / np.pi / np.sqrt(denom**2 - 4 * k12**2),
          2 / np.pi * np.arcsin(2 * k11 / (1 + 2 * k11)), 2 / np.pi * np.arcsin(2 * k22 / (1 + 2 * k22)))


def input_kernels(x1, x2):
  """(K12, K11 diagonal, K22 diagonal) of vector inputs: <x, x'> / dim."""
  dim = x1.shape[1]
  return x1 @ x2.T / dim, np.sum(x1 * x1, 1) / dim, np.sum(x2 * x2, 1) / dim


def closed_form_fc(x1, x2, nonlinearity, w_std, b_std, depth=3):
  """Independent numpy recursion for a depth-`depth` FC net + readout, NTK parameterization."""
  k12, k11, k22 = input_kernels(x1, x2)
  ntk12 = np.zeros_like(k12)
  for layer in range(depth + 1):
    if layer > 0:
      k12, dot12, k11, k22 = phi_kernel(nonlinearity, k12, k11, k22, same=x2 is x1)
      ntk12 = ntk12 * dot12
    k12, k11, k22 = (w_std**2 * k + b_std**2 for k in (k12, k11, k22))
    ntk12 = k12 + w_std**2 * ntk12
  return k12, ntk12


def closed_form_resnet(x1, x2, nonlinearity, scale=RESIDUAL_SCALE, blocks=RESIDUAL_BLOCKS):
  """Dense(1, 0) -> blocks x [x + scale * Dense(1, 0)(phi(x))] -> Dense(1, 0.1): independent branches add."""
  k12, k11, k22 = input_kernels(x1, x2)
  ntk12 = k12.copy()
  for _ in range(blocks):
    b12, dot12, b11, b22 = phi_kernel(nonlinearity, k12, k11, k22, same=x2 is x1)
    b12, b11, b22 = scale**2 * b12, scale**2 * b11, scale**2 * b22
    ntk12 = ntk12 + b12 + scale**2 * ntk12 * dot12
    k12, k11, k22 = k12 + b12, k11 + b11, k22 + b22
  k12 = k12 + 0.1**2
  return k12, k12 + ntk12


def same_padding(size, stride, filter_size=3):
  """TF / lax 'SAME': output ceil(size / stride); total padding split low = total // 2, high = the rest."""
  out = -(-size // stride)
  total = max((out - 1) * stride + filter_size - size, 0)
  return out, total // 2, total - total // 2


def closed_form_cnn(x1, x2, strides, depth, pool, w_std=SQRT2, b_std=0.1, filter_size=3):
  """Independent numpy recursion for [Conv 3x3 SAME + ReLU] x depth -> Flatten | GAP -> Dense, NTK param.

  Full spatial covariances K[i, j, h, w, h', w'] (Novak et al. 2019, arXiv 1810.05148, Sec. 2.2 / App. E):
  input K0 = sum_c x1[i,h,w,c] x2[j,h',w',c] / C; a conv averages K over the 9 filter offsets applied at the
  same offset to both positions, zero-padded (padded terms count as 0, the divisor stays 9), then
  K <- w^2 K + b^2 and NTK <- K + w^2 * (filter-averaged NTK); Flatten averages the spatial diagonal
  (h, w) = (h', w'); GAP averages all pairs of positions.
  """
  same = x2 is x1
  n1, n2 = len(x1), len(x2)
  channels = x1.shape[-1]
  k12 = np.einsum("ahwc,bxyc->abhwxy", x1, x2) / channels
  var1 = np.einsum("ahwc,ahwc->ahw", x1, x1) / channels
  var2 = np.einsum("ahwc,ahwc->ahw", x2, x2) / channels
  ntk = np.zeros_like(k12)

  def conv(k, spatial_ndim_pairs):
    size = k.shape[-1]
    out, lo, hi = same_padding(size, strides, filter_size)
    pad = [(0, 0)] * (k.ndim - 2 * spatial_ndim_pairs) + [(lo, hi)] * (2 * spatial_ndim_pairs)
    k = np.pad(k, pad)
    total = 0.0
    for dh in range(filter_size):
      for dw in range(filter_size):
        rows = slice(dh, dh + (out - 1) * strides + 1, strides)
        cols = slice(dw, dw + (out - 1) * strides + 1, strides)
        index = (Ellipsis,) + (rows, cols) * spatial_ndim_pairs
        total = total + k[index]
    return total / filter_size**2

  for layer in range(depth + 1):
    if layer > 0:  # ReLU on (k12, var1, var2), NTK times the derivative kernel
      norms = np.sqrt(var1[:, None, :, :, None, None] * var2[None, :, None, None, :, :])
      cos = np.clip(k12 / norms, -1.0, 1.0)
      theta = np.arccos(cos)
      if same:  # exactly 0 where the two arguments coincide (same image, same position)
        for i in range(n1):
          theta[i, i][np.eye(theta.shape[2] * theta.shape[3]).reshape(theta.shape[2:]) == 1] = 0.0
      k12, ntk = (norms * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi),
                  ntk * (np.pi - theta) / (2 * np.pi))
      var1, var2 = var1 / 2, var2 / 2
    if layer == depth:
      break
    k12 = w_std**2 * conv(k12, 2) + b_std**2
    ntk = k12 + w_std**2 * conv(ntk, 2)
    var1 = w_std**2 * conv(var1, 1) + b_std**2
    var2 = w_std**2 * conv(var2, 1) + b_std**2
  size = k12.shape[-1]
  if pool == "flatten":
    diagonal = np.eye(size * size).reshape(size, size, size, size).astype(bool)
    k12 = k12[:, :, diagonal].mean(-1)
    ntk = ntk[:, :, diagonal].mean(-1)
  else:
    k12, ntk = k12.reshape(n1, n2, -1).mean(-1), ntk.reshape(n1, n2, -1).mean(-1)
  k12 = w_std**2 * k12 + b_std**2
  return k12, k12 + w_std**2 * ntk


# The independent numpy recursion of each case: (x1, x2) -> (nngp, ntk).
CLOSED_FORMS = {
    "fc_relu": lambda a, b: closed_form_fc(a, b, "relu", SQRT2, 0.1),
    "fc_erf": lambda a, b: closed_form_fc(a, b, "erf", 1.5, 0.05),
    "cnn_flatten_relu": lambda a, b: closed_form_cnn(a, b, strides=1, depth=2, pool="flatten"),
    "cnn_gap_relu": lambda a, b: closed_form_cnn(a, b, strides=1, depth=2, pool="gap"),
    "cnn_strided": lambda a, b: closed_form_cnn(a, b, strides=2, depth=1, pool="flatten"),
    "cnn_strided2": lambda a, b: closed_form_cnn(a, b, strides=2, depth=2, pool="flatten"),
    "resnet_relu": lambda a, b: closed_form_resnet(a, b, "relu"),
    "resnet_erf": lambda a, b: closed_form_resnet(a, b, "erf"),
}


def rel_err(a, b):
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def check(name, got, want, rtol, mask=None):
  """Relative max error over the entries in `mask` (all when None), normalised by max|want|."""
  err = rel_err(got, want) if mask is None else float(
      np.max(np.abs(got - want)[mask]) / np.max(np.abs(want)))
  status = "ok" if err < rtol else "FAILED"
  print(f"  check {name}: rel max err {err:.2e} (< {rtol:g}) {status}")
  if err >= rtol:
    raise SystemExit(f"self-check {name} failed: {err:.3e}")


def check_closed_form(name, tag, nngp, ntk, cf_nngp, cf_ntk):
  check(f"{name} nngp_{tag} vs closed form", nngp, cf_nngp, CLOSED_FORM_RTOL)
  if tag == "12":
    check(f"{name} ntk_{tag} vs closed form", ntk, cf_ntk, CLOSED_FORM_RTOL)
    return
  diagonal = np.eye(len(ntk), dtype=bool)
  check(f"{name} ntk_{tag} off-diagonal vs closed form", ntk, cf_ntk, CLOSED_FORM_RTOL, ~diagonal)
  check(f"{name} ntk_{tag} diagonal vs closed form", ntk, cf_ntk, DIAGONAL_NTK_RTOL, diagonal)


def versions() -> dict:
  out = {}
  for package in PACKAGES:
    try:
      out[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      out[package] = None
  return out


def main() -> None:
  rng = np.random.default_rng(SEED)
  arrays = {}
  for name, (build, kind, nt_spec, harness_spec) in CASES.items():
    x1, x2 = make_inputs(kind, rng)
    _, _, kernel_fn = build()
    nngp_11, ntk_11 = nt_kernels(kernel_fn, x1, None)
    nngp_12, ntk_12 = nt_kernels(kernel_fn, x1, x2)
    print(f"{name}: x1 {x1.shape} x2 {x2.shape} nngp_11 {nngp_11.shape} nngp_12 {nngp_12.shape}")
    same_nngp, same_ntk = nt_kernels(kernel_fn, x1, x1)
    check(f"{name} kernel_fn(x1, None) == kernel_fn(x1, x1) nngp", same_nngp, nngp_11, SELF_RTOL)
    check(f"{name} kernel_fn(x1, None) == kernel_fn(x1, x1) ntk", same_ntk, ntk_11, SELF_RTOL)
    closed_form = CLOSED_FORMS[name]
    for tag, a, b, nngp, ntk in (("11", x1, x1, nngp_11, ntk_11), ("12", x1, x2, nngp_12, ntk_12)):
      cf_nngp, cf_ntk = closed_form(a, b)
      check_closed_form(name, tag, nngp, ntk, cf_nngp, cf_ntk)
      if tag == "11":
        ntk_11_diagonal_exact = np.diag(cf_ntk).copy()
    if name.startswith("resnet"):
      nonlinearity = stax.Relu if name == "resnet_relu" else stax.Erf
      _, _, scaled_phi = resnet(nonlinearity, scale_as="phi")
      f_nngp, f_ntk = nt_kernels(scaled_phi, x1, x2)
      check(f"{name} branch scale as W_std=s == as s*phi nngp", nngp_12, f_nngp, SELF_RTOL)
      check(f"{name} branch scale as W_std=s == as s*phi ntk", ntk_12, f_ntk, SELF_RTOL)
    arrays.update({
        f"{name}/x1": x1, f"{name}/x2": x2,
        f"{name}/nngp_11": nngp_11, f"{name}/ntk_11": ntk_11,
        f"{name}/nngp_12": nngp_12, f"{name}/ntk_12": ntk_12,
        f"{name}/ntk_11_diagonal_exact": ntk_11_diagonal_exact,
        f"{name}/nt_spec": np.array(nt_spec), f"{name}/harness_spec": np.array(harness_spec),
    })
  meta = {
      "generated_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": "/tmp/ntvenv/bin/python tools/nt_oracle/make_reference.py",
      "script": "tools/nt_oracle/make_reference.py",
      "seed": SEED,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "jax_backend": jax.default_backend(),
      "jax_enable_x64": bool(jax.config.jax_enable_x64),
      "versions": versions(),
      "cases": list(CASES),
  }
  arrays["meta/json"] = np.array(json.dumps(meta, sort_keys=True))
  OUTPUT_PATH.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(OUTPUT_PATH, **arrays)
  print(f"wrote {OUTPUT_PATH.relative_to(REPO_ROOT)} ({os.path.getsize(OUTPUT_PATH)} bytes)")
  print(json.dumps(meta, indent=1, sort_keys=True))


if __name__ == "__main__":
  main()
