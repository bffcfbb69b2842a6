"""Mean-field signal propagation in wide fully connected nets: q*, chi_1, c*, the critical line, depth scales.

A layer of a wide net maps the preactivation covariance of two inputs, [[q1, q12], [q12, q2]], to

    q'   = sigma_w2 * E[phi(u)^2]    + sigma_b2                      (the Q-map)
    q12' = sigma_w2 * E[phi(u)phi(v)] + sigma_b2                     (the C-map, c = q12 / q)

with (u, v) Gaussian of that covariance (Poole et al. 2016, arXiv 1606.05340; Schoenholz et al. 2017,
arXiv 1611.01232). Inputs with q = q* (the Q-map's fixed point) keep it; their correlation c follows the
C-map, whose slope is

    chi(c) = sigma_w2 * E[phi'(u) phi'(v)]          (Price's theorem: d E[phi phi] / d q12 = E[phi' phi'])

chi_1 = chi(1) = sigma_w2 E[phi'(sqrt(q*) z)^2] separates the ordered phase (chi_1 < 1: c* = 1 is stable)
from the chaotic phase (chi_1 > 1: a stable c* < 1 appears); chi_1 = 1 is the critical line. Depth scales,
as defined in the neural-tangents colab for Xiao, Pennington & Schoenholz 2020 (arXiv 1912.13053):

    xi_1 = -1 / log(chi_1)                           ordered phase (trainability and generalization)
    xi_* = -1 / (log(chi_c*) - log(chi_1))           chaotic phase (generalization), chi_c* = chi(c*)

The same maps give the NNGP (K) and NTK (Theta) of a deep net, layer by layer, in the NTK parameterisation
of neural-tangents' stax (Jacot et al. 2018, arXiv 1806.07572; Lee et al. 2019, arXiv 1902.06720):
Dense: K <- sigma_w2 * K_hat + sigma_b2, Theta <- K + sigma_w2 * Theta_hat; activation:
K_hat = E[phi phi](K), Theta_hat = E[phi' phi'](K) * Theta.

Gaussian expectations come in two independent routes (`method`):
  "closed_form": Erf (Williams 1997): E[phi phi] = 2/pi * arcsin(2 q12 / sqrt((1 + 2 q1)(1 + 2 q2))),
                 E[phi' phi'] = 4/pi / sqrt((1 + 2 q1)(1 + 2 q2) - 4 q12^2);
                 ReLU (arc-cosine kernel, Cho & Saul 2009): with cos(theta) = q12 / sqrt(q1 q2),
                 E[phi phi] = sqrt(q1 q2) / (2 pi) * (sin theta + (pi - theta) cos theta),
                 E[phi' phi'] = (pi - theta) / (2 pi).
  "quadrature":  Gauss-Hermite quadrature of the same expectations (numpy.polynomial.hermite_e), 1-D on the
                 diagonal (c = 1), tensor 2-D off it; for Erf, relative error < 1e-13 up to q = 3 with 200
                 nodes (it degrades for larger q: erf(sqrt(q) z) grows too fast off the real axis); for ReLU
                 exact on the diagonal (even order, symmetric nodes), slowly convergent off it (the kink).
Root finding is bracketed (scipy.optimize.brentq) to float64 precision.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Iterable, Iterator, Sequence

import numpy as np
from scipy import linalg, optimize

ACTIVATIONS = ("erf", "relu")
METHODS = ("closed_form", "quadrature")
QUADRATURE_ORDER = 200  # Gauss-Hermite nodes per dimension (even: no node at 0); Erf error < 1e-13 for q <= 3
XTOL = 1e-15           # absolute tolerance of the root finders
RTOL = 4 * np.finfo(np.float64).eps
PHASE_TOLERANCE = 1e-9  # |chi_1 - 1| below this counts as critical


def _check(activation: str, method: str) -> None:
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# -- Gaussian expectations -----------------------------------------------------------------------
def _closed_form(activation: str, q1, q2, q12) -> tuple[np.ndarray, np.ndarray]:
  q1, q2, q12 = (np.asarray(a, dtype=np.float64) for a in (q1, q2, q12))
  if activation == "erf":
    a1, a2 = 1.0 + 2.0 * q1, 1.0 + 2.0 * q2
    phi_phi = 2.0 / np.pi * np.arcsin(np.clip(2.0 * q12 / np.sqrt(a1 * a2), -1.0, 1.0))
    dphi_dphi = 4.0 / np.pi / np.sqrt(a1 * a2 - 4.0 * q12 ** 2)
    return phi_phi, dphi_dphi
  with np.errstate(over="ignore"):
    product = q1 * q2
  # sqrt(q1 q2) where it is finite (exactly q on the diagonal, so theta = 0 there); beyond q ~ 1e154 (deep nets
  # with branch scale 1) q1 q2 overflows and the factored form takes over.
  norm = np.where(np.isfinite(product), np.sqrt(product), np.sqrt(q1) * np.sqrt(q2))
  cos = np.clip(np.divide(q12, norm, out=np.ones_like(norm), where=norm > 0), -1.0, 1.0)
  theta = np.arccos(cos)
  phi_phi = norm / (2.0 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
  dphi_dphi = (np.pi - theta) / (2.0 * np.pi)
  return phi_phi, dphi_dphi


@functools.lru_cache(maxsize=4)
def _hermite(order: int) -> tuple[np.ndarray, np.ndarray]:
  nodes, weights = np.polynomial.hermite_e.hermegauss(order)
  return nodes, weights / np.sqrt(2.0 * np.pi)  # E over N(0, 1)


def _phi(activation: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """phi(x) and phi'(x)."""
  if activation == "erf":
    from scipy.special import erf
    return erf(x), 2.0 / np.sqrt(np.pi) * np.exp(-x ** 2)
  return np.maximum(x, 0.0), (x > 0).astype(np.float64)


def _quadrature(activation: str, q1, q2, q12, order: int = QUADRATURE_ORDER) -> tuple[np.ndarray, np.ndarray]:
  """E[phi(u) phi(v)], E[phi'(u) phi'(v)] with u = sqrt(q1) z1, v = sqrt(q2) (c z1 + sqrt(1 - c^2) z2)."""
  q1, q2, q12 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (q1, q2, q12)))
  z, w = _hermite(order)
  z1, z2 = z[:, None], z[None, :]
  ww = w[:, None] * w[None, :]
  phi_phi, dphi_dphi = np.empty(q1.shape), np.empty(q1.shape)
  for index in np.ndindex(q1.shape):
    a, b, ab = q1[index], q2[index], q12[index]
    c = ab / math.sqrt(a * b) if a * b > 0 else 1.0
    c = min(1.0, max(-1.0, c))
    if c == 1.0 and a == b:  # the diagonal: a 1-D rule
      f, d = _phi(activation, math.sqrt(a) * z)
      phi_phi[index], dphi_dphi[index] = np.sum(w * f * f), np.sum(w * d * d)
      continue
    u = math.sqrt(a) * z1
    v = math.sqrt(b) * (c * z1 + math.sqrt(max(0.0, 1.0 - c * c)) * z2)
    (fu, du), (fv, dv) = _phi(activation, u), _phi(activation, v)
    phi_phi[index] = np.sum(ww * fu * fv)
    dphi_dphi[index] = np.sum(ww * du * dv)
  return phi_phi, dphi_dphi


def gaussian_moments(activation: str, q1, q2, q12, method: str = "closed_form") -> tuple[np.ndarray, np.ndarray]:
  """(E[phi(u) phi(v)], E[phi'(u) phi'(v)]) for (u, v) ~ N(0, [[q1, q12], [q12, q2]]), elementwise."""
  _check(activation, method)
  if method == "closed_form":
    return _closed_form(activation, q1, q2, q12)
  return _quadrature(activation, q1, q2, q12)


# -- one (sigma_w2, sigma_b2) point --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MeanField:
  """The Q- and C-maps of a wide fully connected net with weight / bias variances sigma_w2 / sigma_b2."""
  activation: str
  sigma_w2: float
  sigma_b2: float
  method: str = "closed_form"

  def __post_init__(self):
    _check(self.activation, self.method)
    if self.sigma_w2 <= 0 or self.sigma_b2 < 0:
      raise ValueError(f"need sigma_w2 > 0 and sigma_b2 >= 0, got {self.sigma_w2}, {self.sigma_b2}")

  def _moments(self, q1, q2, q12):
    return gaussian_moments(self.activation, q1, q2, q12, self.method)

  def q_map(self, q: float) -> float:
    phi_phi, _ = self._moments(q, q, q)
    return float(self.sigma_w2 * phi_phi + self.sigma_b2)

  @functools.cached_property
  def q_star(self) -> float:
    """The fixed point of the Q-map (finite for Erf always; for ReLU only when sigma_w2 < 2)."""
    if self.activation == "relu":
      if self.sigma_w2 >= 2.0:
        if self.sigma_b2 == 0.0:
          raise ValueError("ReLU with sigma_w2 >= 2 and sigma_b2 = 0: every q is preserved (sigma_w2 = 2) "
                           "or grows (sigma_w2 > 2); there is no unique q*")
        raise ValueError(f"ReLU with sigma_w2={self.sigma_w2} >= 2, sigma_b2 > 0: q grows without bound")
      return self.sigma_b2 / (1.0 - self.sigma_w2 / 2.0)
    # Erf: 0 <= E[erf^2] < 1, so q* lies in [sigma_b2, sigma_b2 + sigma_w2].
    f = lambda q: self.q_map(q) - q
    low = self.sigma_b2
    if f(low) <= 0.0:  # sigma_b2 = 0 and q* = 0 (ordered or critical with no bias)
      return low
    return optimize.brentq(f, low, self.sigma_b2 + self.sigma_w2, xtol=XTOL, rtol=RTOL)

  def c_map(self, c: float) -> float:
    """Correlation after one layer of two inputs at q*, correlation c."""
    q = self.q_star
    phi_phi, _ = self._moments(q, q, c * q)
    return float((self.sigma_w2 * phi_phi + self.sigma_b2) / q)

  def chi(self, c: float) -> float:
    """The C-map's slope at c: sigma_w2 * E[phi'(u) phi'(v)], (u, v) at q*, correlation c."""
    q = self.q_star
    _, dphi_dphi = self._moments(q, q, c * q)
    return float(self.sigma_w2 * dphi_dphi)

  @functools.cached_property
  def chi_1(self) -> float:
    if self.activation == "relu":
      return self.sigma_w2 / 2.0  # E[step(u)^2] = 1/2 for every q
    return self.chi(1.0)

  @property
  def phase(self) -> str:
    if abs(self.chi_1 - 1.0) <= PHASE_TOLERANCE:
      return "critical"
    return "ordered" if self.chi_1 < 1.0 else "chaotic"

  @functools.cached_property
  def c_star(self) -> float:
    """The stable fixed point of the C-map: 1 in the ordered phase, the root below 1 in the chaotic one."""
    if self.phase != "chaotic":
      return 1.0
    # Just below 1, C(1 - e) - (1 - e) = e (1 - chi_1) + O(e^2) < 0, while C(0) = sigma_b2 / q* >= 0 for odd
    # phi: the root in [0, 1) is the stable fixed point.
    f = lambda c: self.c_map(c) - c
    high = 1.0 - 1e-6
    while f(high) >= 0.0:  # chi_1 barely above 1: move towards 1 until C(c) < c
      high = 1.0 - (1.0 - high) / 10.0
      if high >= 1.0:
        raise ValueError(f"could not bracket c* for {self}")
    low = 0.0 if self.activation == "erf" else -1.0
    return optimize.brentq(f, low, high, xtol=XTOL, rtol=RTOL)

  @property
  def chi_c_star(self) -> float:
    return self.chi(self.c_star)

  @property
  def xi_1(self) -> float:
    """-1 / log(chi_1): the ordered-phase depth scale (infinite at criticality)."""
    if self.phase == "chaotic":
      raise ValueError(f"xi_1 is the ordered-phase depth scale; {self} is chaotic (use xi_star)")
    return math.inf if self.phase == "critical" else -1.0 / math.log(self.chi_1)

  @property
  def xi_star(self) -> float:
    """-1 / (log chi_c* - log chi_1): the chaotic-phase depth scale of generalization."""
    if self.phase != "chaotic":
      raise ValueError(f"xi_* is defined in the chaotic phase only; {self} is {self.phase}")
    return -1.0 / (math.log(self.chi_c_star) - math.log(self.chi_1))


# -- the critical line ---------------------------------------------------------------------------
def critical_sigma_w2(activation: str, sigma_b2: float, method: str = "closed_form") -> float:
  """sigma_w2 on the critical line chi_1(sigma_w2, sigma_b2) = 1.

  Erf, closed form: eliminating sigma_w2 = pi/4 sqrt(1 + 4 q*) (chi_1 = 1) from the fixed-point equation
  leaves one equation in q*:  q - sqrt(1 + 4 q) / 2 * arcsin(2 q / (1 + 2 q)) = sigma_b2, solved by brentq.
  Erf, quadrature: brentq over sigma_w2 of chi_1 - 1, each chi_1 from a quadrature q* (an independent route).
  ReLU: chi_1 = sigma_w2 / 2, so sigma_w2 = 2; a finite q* there needs sigma_b2 = 0.
  """
  _check(activation, method)
  if activation == "relu":
    if sigma_b2 != 0.0:
      raise ValueError("ReLU is critical only at (sigma_w2, sigma_b2) = (2, 0); with sigma_b2 > 0 q* diverges")
    return 2.0
  if method == "closed_form":
    if sigma_b2 == 0.0:
      return math.pi / 4.0  # q* = 0, chi_1 = sigma_w2 * erf'(0)^2 = sigma_w2 * 4 / pi
    g = lambda q: q - 0.5 * math.sqrt(1.0 + 4.0 * q) * math.asin(2.0 * q / (1.0 + 2.0 * q)) - sigma_b2
    high = 1.0
    while g(high) <= 0.0:
      high *= 2.0
    q = optimize.brentq(g, 0.0, high, xtol=XTOL, rtol=RTOL)
    return math.pi / 4.0 * math.sqrt(1.0 + 4.0 * q)
  f = lambda sigma_w2: MeanField("erf", sigma_w2, sigma_b2, "quadrature").chi_1 - 1.0
  low, high = math.pi / 4.0 * (1.0 - 1e-12), 2.0
  while f(high) <= 0.0:
    high *= 2.0
  return optimize.brentq(f, low, high, xtol=XTOL, rtol=RTOL)


def critical_line(activation: str, sigma_b2s: Sequence[float], method: str = "closed_form") -> np.ndarray:
  return np.array([critical_sigma_w2(activation, float(s), method) for s in sigma_b2s])


# -- NNGP and NTK of a deep fully connected net on data ------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kernels:
  """NNGP and NTK of one depth over all inputs given (n, n)."""
  depth: int
  nngp: np.ndarray
  ntk: np.ndarray


def fcn_kernels(x: np.ndarray, depths: Sequence[int], activation: str, sigma_w2: float, sigma_b2: float,
                method: str = "closed_form") -> Iterator[Kernels]:
  """NNGP / NTK of x -> Dense -> [phi -> Dense] * depth (NT stax, NTK parameterisation), for each depth.

  x: (n, d) inputs (flattened); the input layer gives K = sigma_w2 x x^T / d + sigma_b2 and Theta = K.
  `depth` counts hidden layers (nonlinearities); depth 0 is the linear model. Yields `Kernels` for the
  requested depths in increasing order, reusing the recursion between them, so depth 400 costs 400 layers.
  """
  x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
  wanted = sorted(set(int(d) for d in depths))
  if not wanted or wanted[0] < 0:
    raise ValueError(f"depths must be non-negative, got {depths}")
  nngp = sigma_w2 * (x @ x.T) / x.shape[1] + sigma_b2
  ntk = nngp.copy()
  layer = 0
  for depth in wanted:
    while layer < depth:
      diag = np.diagonal(nngp)
      phi_phi, dphi_dphi = gaussian_moments(activation, diag[:, None], diag[None, :], nngp, method)
      nngp = sigma_w2 * phi_phi + sigma_b2
      ntk = nngp + sigma_w2 * dphi_dphi * ntk
      layer += 1
    yield Kernels(depth, nngp.copy(), ntk.copy())


def two_point_ntk_ratio(activation: str, sigma_w2: float, sigma_b2: float, c0: float, depths: Sequence[int],
                        q0: float | None = None) -> np.ndarray:
  """Theta_12 / Theta_11 after each depth for two inputs of squared norm q0 (default q*) and correlation c0.

  At criticality c^l -> 1 like 1/l, so chi(c^l) = 1 - a/l and the off-diagonal NTK sums the diagonal's
  terms with weights (k/l)^a: the ratio tends to 1/(1 + a). Erf (C analytic at c = 1, chi_1 = 1):
  1 - c^{l+1} = e - chi'(1) e^2 / 2 gives a = 2, ratio 1/3. ReLU at (2, 0): C(1 - e) = 1 - e +
  (2 sqrt 2 / (3 pi)) e^{3/2} + ..., so e_l ~ (3 pi / sqrt 2)^2 / l^2 and chi = 1 - sqrt(2 e) / pi = 1 - 3/l:
  a = 3, ratio 1/4 (only sigma_b2 = 0 gives a finite q* at the ReLU critical point).
  """
  field = MeanField(activation, sigma_w2, sigma_b2)
  q = field.q_star if q0 is None else float(q0)
  if q <= 0:
    raise ValueError("two_point_ntk_ratio needs q0 > 0 (pass q0 when q* = 0)")
  nngp = np.array([[q, c0 * q], [c0 * q, q]])  # the first layer's NNGP; its NTK equals it
  ntk = nngp.copy()
  ratios, layer = [], 0
  for depth in sorted(int(d) for d in depths):
    while layer < depth:
      diag = np.diagonal(nngp)
      phi_phi, dphi_dphi = _closed_form(activation, diag[:, None], diag[None, :], nngp)
      nngp = sigma_w2 * phi_phi + sigma_b2
      ntk = nngp + sigma_w2 * dphi_dphi * ntk
      layer += 1
    ratios.append(ntk[0, 1] / ntk[0, 0])
  return np.array(ratios)


@dataclasses.dataclass(frozen=True)
class DepthPoint:
  """Trainability and generalization diagnostics of one depth's NTK (Xiao et al. 2020, arXiv 1912.13053).

  condition_number: lambda_max / lambda_min of the train-train NTK (trainability: gradient descent needs
  ~condition_number steps). mean_predictor_rms: root mean square over test points and outputs of the
  infinite-time mean prediction Theta_test,train Theta^-1 Y, Y centered by its training mean as in the NT
  colab (its decay with depth means the net forgets the data: no generalization). offdiag_ratio: mean
  off-diagonal over mean diagonal entry of the train-train NTK.
  """
  depth: int
  condition_number: float
  mean_predictor_rms: float
  offdiag_ratio: float


def ntk_depth_profile(kernels: Iterable[Kernels], n_train: int, y_train: np.ndarray) -> list[DepthPoint]:
  """DepthPoint of every Kernels (over [train; test] inputs, the first n_train being the training set)."""
  y = np.asarray(y_train, dtype=np.float64)
  y = y - y.mean(axis=0, keepdims=True)
  points = []
  for k in kernels:
    train, test_train = k.ntk[:n_train, :n_train], k.ntk[n_train:, :n_train]
    try:
      alpha = linalg.solve(train, y, assume_a="pos", check_finite=False)
    except (linalg.LinAlgError, np.linalg.LinAlgError):
      alpha = linalg.lstsq(train, y, check_finite=False)[0]
    mean = test_train @ alpha
    off = ~np.eye(n_train, dtype=bool)
    points.append(DepthPoint(k.depth, condition_number(train), float(np.sqrt(np.mean(mean ** 2))),
                             float(train[off].mean() / np.diagonal(train).mean())))
  return points


def decay_rate(depths: Sequence[float], values: Sequence[float]) -> float:
  """-d log(value) / d depth by least squares: the rate r of value ~ exp(-r depth)."""
  slope = np.polyfit(np.asarray(depths, dtype=np.float64), np.log(np.asarray(values, dtype=np.float64)), 1)[0]
  return float(-slope)


def condition_number(k: np.ndarray) -> float:
  """lambda_max / lambda_min of a symmetric PSD matrix (inf when lambda_min <= 0 numerically)."""
  evals = np.linalg.eigvalsh(np.asarray(k, dtype=np.float64))
  return float(evals[-1] / evals[0]) if evals[0] > 0 else math.inf


__all__ = ["ACTIVATIONS", "METHODS", "MeanField", "gaussian_moments", "critical_sigma_w2", "critical_line",
           "Kernels", "fcn_kernels", "two_point_ntk_ratio", "DepthPoint", "ntk_depth_profile", "decay_rate",
           "condition_number"]
