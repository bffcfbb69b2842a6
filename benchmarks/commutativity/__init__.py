"""Experiment `commutativity`: width and depth limits commute in residual nets with 1/sqrt(depth) branches.

Reproduces Hayou & Yang, "Width and Depth Limits Commute in Residual Networks" (ICML 2023, arXiv 2302.00453)
and Hayou, "Commutative Width and Depth Scaling in Deep Neural Networks" (arXiv 2310.01683): in the residual net

    Y_0 = W_in x,   Y_l = Y_{l-1} + s W_l phi(Y_{l-1}),  l = 1..L,   weights N(0, 1/fan_in),  s = L^(-1/2),

the covariance of the pre-activations converges to the same limit whether the width n or the depth L goes to
infinity first or both together, the pre-activations become Gaussian, and s = L^(-1/2) is the only branch scale
with a nontrivial limit (s = 1: the variance explodes and, for ReLU, the correlation collapses to 1; s = 1/L:
the net tends to the identity map).

Quantities (inputs: an anchor and partners at input correlations c0, all with x.x/d = 1; in the `small` tier
also pairs of real CIFAR-10 training images, each image standardised to mean 0 and x.x/d = 1):
  q_L = |Y_L(x)|^2 / n and c_L = <Y_L(x), Y_L(x')> / (|Y_L(x)| |Y_L(x')|), the neural covariance of the paper,
  in one net; their limits q(1), c(1) solve the flow of harness/theory/residual_flow.py (ReLU: q(1) = e^(1/2)
  q(0), dc/dt = (sqrt(1 - c^2) - c arccos c) / (2 pi); Erf: dK/dt = (2/pi) arcsin(2 k12 / sqrt((1 + 2 q1)(1 + 2 q2)))).

Parts (phases of the run):
1. flow: the limit c(1), q(1) (scipy solve_ivp, float64, rtol 1e-12) and the leading coefficient e_c of the
   finite-depth error c_L - c(1) = e_c / L + O(1/L^2) (Euler's method, see residual_flow).
2. infinite_width: the library's infinite-width kernel of the finite-depth net (`harness.nets` spec.kernel,
   float64) for L in `kernel_depths` and three branch scales; checked against the recursion of residual_flow.
   The kernel is evaluated op by op (XLA compilation of a 256-block unrolled graph alone takes minutes).
3. monte_carlo: finite nets over the (n, L) grid. Each net is simulated exactly in distribution by the Gram
   recursion: given Y_{l-1} (n x P for P inputs), the rows of W_l phi(Y_{l-1}) are i.i.d. N(0, G) with
   G = phi^T phi / n, because W_l is fresh Gaussian and used once (Li, Nica & Roy 2022, arXiv 2206.02768, the
   covariance Markov chain). So Y_l = Y_{l-1} + s Z A with Z n x P standard normal and A^T A = G: O(n P^2) per
   block instead of O(n^2 P) (harness/residual_gram.py; tests/benchmarks/test_commutativity.py checks it against
   explicit weight matrices, and part 6 against the library's Keras nets, by two-sample KS tests). Metric per
   seed: the mean over that seed's `nets_per_seed` nets and over the input pairs of |c_{n,L} - c(1)| (an L1 distance of the random
   kernel from its deterministic limit).
   Paths to the limit: width first = the infinite-width kernel at L -> infinity (theory rate 1/L);
   depth first = L = max(depths), n growing; joint = n = L growing. At finite n the distance is dominated by
   the O(n^(-1/2)) fluctuation of c_{n,L}, uniformly in L (the commutativity), so its slope vs n is -1/2.
4. gaussianity: excess kurtosis E[y^4]/E[y^2]^2 - 3 (mean 0 known) of a pre-activation y of Y_L for one input,
   pooled over neurons and `gauss_samples` (neurons x nets) per seed; exchangeable neurons share the marginal.
   For a Gaussian scale mixture y | V ~ N(0, V) it is 3 Var(V) / E[V]^2 = O(1/n) (measured: about 8/n for
   ReLU, 1.5/n for Erf); its sampling sd is about sqrt(24 / samples) (0.005 at 10^6 samples), set below the
   differences between consecutive widths of the grid.
5. contrast: the same with s = 1 and s = 1/L (infinite width by the library; Monte Carlo on the grid).
   s = 1, ReLU: q_{l+1} = 1.5 q_l and c_{l+1} = (c_l + f(c_l)) / 1.5 with the arc-cosine map
   f(c) = (sin t + (pi - t) cos t) / (2 pi), cos t = c. With eps = 1 - c, t = sqrt(2 eps) (1 + O(eps)) and
   sin t - t cos t = t^3/3 + O(t^5), so f = 1/2 - eps/2 + (2 eps)^(3/2) / (6 pi) + O(eps^(5/2)) and
   eps_{l+1} = eps_l - a eps_l^(3/2) + O(eps_l^(5/2)), a = 2 sqrt(2) / (9 pi). Hence u = eps^(-1/2) obeys
   u_{l+1} = u_l + a/2 + (3 a^2 / 8) eps_l^(1/2) + O(eps_l): c_L -> 1 only algebraically, 1 - c_L ~ (a L / 2)^(-2),
   and the slope of (1 - c_L)^(-1/2) in L tends to a/2 = sqrt(2) / (9 pi) = 0.05002 with relative correction
   (3a/4) eps^(1/2) (at most 3.0% between L = 32 and 64 for any c0 in [-1, 1), measured; 0.8% between 128 and 256).
   s = 1, Erf: E[erf(u)^2] = (2/pi) arcsin(2q / (1 + 2q)) -> 1, so q_L grows only linearly (q_L = 54.7 q_0 at
   L = 64, 983 at L = 1024, q_0 = 1), and the correlation does NOT go to 1: with q_l ~ l,
   c_{l+1} - c_l = ((2/pi) arcsin c_l - c_l) / l (1 + o(1)), and (2/pi) arcsin c < c on (0, 1), so c_L decays to
   the fixed point 0, slowly: near 0 as L^-(1 - 2/pi) = L^-0.363 (c0 = 0.5: c_L = 0.236 at L = 64, 0.091 at 1024).
6. keras: real finite nets of the architecture library, `spec.keras_model` of `residual_spec` (+ a readout
   Dense, which `keras_model` requires; Y_L is read off the last residual Add layer), in ctx.dtype, at the
   (n, L) points `keras_points`, `keras_nets` nets drawn with `harness.nets.reinitialize`, against as many
   nets of `simulate_gram`: two-sample Kolmogorov-Smirnov test per synthetic pair of c_L and of the anchor's
   q_L. The library's first Dense has fan_in d and NTK parameterisation w_std / sqrt(fan_in) x W, W ~ N(0, 1),
   i.e. W_in ~ N(0, 1/d); each branch is Relu/Erf then Dense(w_std=1), so it is the same model. (Under
   TensorFlow the library's keras.layers.Rescaling casts s through float32: s is off by <= 6e-8 relative, far
   below what the test resolves.) Keras APIs only (runs under KERAS_BACKEND=tensorflow and jax).

The folder: config.py (config and tiers), families.py (the metrics), inputs.py, nets.py (the library's
residual net, its kernel and Keras nets), phases.py (the run), claims.py, theory.py (closed-form reference
entries and their derivations), figures.py, experiment.py (EXPERIMENT).
"""
