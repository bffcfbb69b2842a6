"""Experiment `finite_vs_infinite`: the gap between finite- and infinite-width networks closes at a definite rate.

Reproduces Andreassen & Dyer, "Asymptotics of Wide Convolutional Neural Networks" (arXiv 2008.08675): for wide CNNs
and nets with skip connections the difference between finite- and infinite-width models vanishes at a definite rate
in the width n; with Lee et al., "Finite Versus Infinite Neural Networks: an Empirical Study" (NeurIPS 2020, arXiv
2007.15801): centering and ensembling make finite nets behave like their kernels, a large learning rate and weight
decay break the correspondence, NNGP kernels frequently beat NTKs, and floating point precision limits kernel
regression beyond a critical training-set size.

One spec per architecture (architectures.py: FCN, CNN-Flatten, CNN-GAP, a residual CNN; ReLU, NTK parameterisation)
gives the Keras net at width n and its analytic NNGP / NTK. Data: the first n_train official training images and
n_test test images of CIFAR-10 (exact pixels), 8x8, standardised, centered one-hot targets, the same for every seed
(seeds draw initialisations). Finite nets: full-batch gradient descent on MSE (harness.training) for `steps` steps;
the infinite-width prediction at the same time t = eta x steps is the NTK's gradient flow
(harness.nets.predict.gradient_descent_mse_mean), defined for any rate because it is the flow, not the discrete
steps. Per architecture (one phase each):
1. kernels: the analytic NNGP and NTK on train + test; the critical rate 2 N k / lambda_max(Theta); the NTK flow's
   test scores in every setting and kernel ridge regression (NNGP and NTK, diag_reg on a validation split).
2. widths: per width and seed, one net's empirical NTK on the first ntk_points training images at initialisation
   (distance to the analytic NTK) and after training at the small rate (its relative change); its test outputs
   against the kernel flow from its own initial function (single_own_init) and against the kernel's mean (single);
   the same initial weights trained centered (f_t - f_0) in every setting (small rate, large rate, weight decay);
   test scores and the performance gap to the kernel at the same t (signed); seed-ensembles of both.
3. bias (bias_architectures; the paper tier): the ensemble biases of the initial NTK and of the trained outputs, by an
   unbiased estimator over disjoint pairs of many seeds (phases.paired_bias_sq). A seed-average of S nets is off by
   sqrt(b^2/n^2 + v/(n S)), so its 1/n bias shows only where S >> n v / b^2; the pair estimator removes the v/(n S)
   term, but its noise (about +-0.03 with 16 pairs of FCNs at 128 units, measured) still hides a squared bias of
   0.05 -> 0.01 from 128 to 256 units: hundreds of seeds, hence the paper tier.
Then precision: ridgeless NNGP / NTK regression of a bias-free ReLU FCN on unstandardised pixels (an ill-conditioned
kernel), computed and solved in float32 and in float64 for growing training sets (up to 4000 exact-pixel images).

The folder: config.py (config and tiers), architectures.py (the specs), families.py (the metrics), phases.py (the
run), claims.py (claims and tolerances), figures.py, experiment.py (EXPERIMENT).
"""
