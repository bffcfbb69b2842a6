"""One architecture spec -> a finite Keras network and its infinite-width NNGP / NTK kernels.

    from harness import nets
    spec = nets.serial(nets.Conv(filter_size=3, w_std=2 ** 0.5, b_std=0.1), nets.Relu(),
                       nets.GlobalAvgPool(), nets.Dense(w_std=2 ** 0.5, b_std=0.1))
    k = spec.kernel(x1, x2, get=("nngp", "ntk"), dtype="float64")   # {name: (len(x1), len(x2)) array}
    model = spec.keras_model(width=512, input_shape=(32, 32, 3), num_outputs=10, parameterization="ntk")

The kernels follow neural-tangents 0.6 `stax` in the NTK parameterization (Novak et al. 2020, arXiv
1912.02803; Jacot et al. 2018, arXiv 1806.07572): the same spec gives the same numbers to float64 precision
(tests/nets/test_nt_reference.py). Notation: K = NNGP (Lee et al. 2018, arXiv 1711.00165), Theta = NTK,
k11 = K(x, x), k22 = K(x', x'), k12 = K(x, x'), per pixel pair for images (NHWC).

Input       K = x . x' / fan_in (per pixel pair, summed over channels, / C); Theta = 0.
Dense       out = w_std/sqrt(fan_in) x W + b_std b, W, b ~ N(0, 1); on images it acts on channels per pixel.
            K' = w_std^2 K + b_std^2;  Theta' = K' + w_std^2 Theta.
Conv        fan_in = C * filter area; 'SAME' zero padding (TF convention), 'VALID', or 'CIRCULAR' (the image
            wraps around, SAME's output size; NT's padding='CIRCULAR'); strides subsample.
            K'[p, p'] = w_std^2 mean_{d in filter} K[p + d, p' + d] + b_std^2 (the same offset on both sides,
            divisor the filter area also at padded edges; Novak et al. 2019, arXiv 1810.05148, Eq. 2.5; with
            circular padding p + d is taken modulo the image size, on both sides),
            Theta'[p, p'] = K'[p, p'] + w_std^2 mean_d Theta[p + d, p' + d].
Relu        theta = arccos(k12 / sqrt(k11 k22)) (correlation clipped to [-1, 1]; exactly 0 for an input
            paired with itself at one position); arc-cosine kernel (Cho & Saul 2009, Eq. 6, n = 1):
            K' = sqrt(k11 k22) / (2 pi) (sin theta + (pi - theta) cos theta),  Theta' = Theta (pi - theta) / (2 pi).
Erf         arcsine kernel (Williams 1997): K' = 2/pi arcsin(2 k12 / sqrt((1 + 2 k11)(1 + 2 k22))),
            Theta' = Theta 4/pi / sqrt((1 + 2 k11)(1 + 2 k22) - 4 k12^2).
            (Nonlinearities multiply Theta by the derivative kernel E[phi'(u) phi'(v)]; the next Dense/Conv
            adds K', as in NT.)
Identity    unchanged.
Flatten     K = mean over pixels p of K[p, p] (only same-position covariances are ever computed then).
GlobalAvgPool  K = mean over all pixel pairs (p, p') of K[p, p'] (the full spatial covariance is computed,
            for a few input pairs at a time).
residual(branch, s)   x + s branch(x): K = K_x + s^2 K_branch(K_x), Theta likewise (the branch ends in a
            Dense/Conv, so its output is independent of x in the limit; NT FanOut/parallel/FanInSum).
serial, repeat        composition; repeat(layer, n) = serial of n copies.
Output      the readout Dense's kernel for one output (outputs are i.i.d.): a scalar (n1, n2) block.

The finite network (`keras_model`): every hidden Dense/Conv has `width` units/channels, the last Dense
`num_outputs`; parameterizations "ntk", "standard" and "mup" (harness/nets/_parameterization.py;
`mup_lr_multipliers` in harness/nets/_layers.py). At initialisation the output covariance over random weights
converges to K as the width grows, for all three (for "mup" after multiplying it by the readout's fan_in, since
the muP readout is the NTK readout / sqrt(fan_in)); for "ntk" the empirical NTK converges to Theta.

Computation: float32 or float64, XLA-compiled (`backends`), TF32 off. CNNs read out by Flatten and FC nets only
propagate same-position covariances; the (n1, n2, H, W, H, W) covariance is only formed for GlobalAvgPool, in
chunks of input pairs (the pairs innermost for small images) or groups of fixed vertical offset
(harness/nets/_evaluate.py). Nets of repeated blocks at many depths: `DepthProfile` (one compiled loop). The arc-cosine map is one
square root and a polynomial (no libm call), so XLA vectorises it (harness/nets/_kernel_math.py).

Importing this package changes no process state. For speed on CPU, call `nets.configure_xla_cpu()` once, before
the first kernel (the CLI's `run` and `make bench` do). Under TensorFlow it adds
--xla_cpu_prefer_vector_width=512 to XLA_FLAGS, so XLA:CPU uses 512-bit vectors where the CPU has them (the ReLU
angle loop is latency-bound: twice the entries per iteration); XLA reads the flag at the process's first XLA
compilation and applies it to every XLA:CPU program of the process; a width already in XLA_FLAGS wins. It also
drops TF warnings about deliberate choices (retracing: harness.nets compiles once per shape, on purpose; pfor
loops). Under JAX the kernels get the width per program without it. Under both, on glibc, freed memory is kept for
reuse (`backends.keep_freed_memory`). Performance history: docs/performance.md.
"""
from harness.nets._kernel import Kernel
from harness.nets._layers import NTKConv, NTKDense, mup_lr_multipliers, reinitialize
from harness.nets._parameterization import PARAMETERIZATIONS
from harness.nets._spec import (Conv, Dense, Erf, Flatten, GlobalAvgPool, Identity, Layer, Relu, Residual, Serial,
                                repeat, residual, serial)
from harness.nets import predict
from harness.nets import backends as _backends
from harness.nets.backends import configure_xla_cpu
from harness.nets.empirical import empirical_nngp, empirical_ntk, monte_carlo_kernels, outputs
from harness.nets.tiling import kernel_tiled
from harness.nets.depth_profile import DepthProfile
from harness.nets.resnet import cifar_resnet, stage_channels



def eager():
  """Context: `spec.kernel` (and the empirical kernels) run op by op, without XLA compilation.

  XLA compile time grows with the number of layers (an unrolled 64-block residual net: about 20 s on 2 CPU
  cores, 256 blocks: minutes) while small inputs run in milliseconds per layer: for deep nets on a few inputs,
  eager is faster overall, unless the net is a repeated block (`DepthProfile` compiles it as one loop). Results
  agree with the compiled ones to rounding.
  """
  return _backends.current().eager()


__all__ = [
    "Conv", "Dense", "DepthProfile", "Erf", "Flatten", "GlobalAvgPool", "Identity", "Kernel", "Layer", "NTKConv", "NTKDense",
    "PARAMETERIZATIONS", "Relu", "Residual", "Serial", "cifar_resnet", "configure_xla_cpu", "eager", "empirical_nngp",
    "empirical_ntk", "kernel_tiled", "monte_carlo_kernels", "mup_lr_multipliers", "outputs", "predict", "reinitialize",
    "repeat", "residual", "serial", "stage_channels",
]
