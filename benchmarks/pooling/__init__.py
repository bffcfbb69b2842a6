"""Experiment `pooling`: CNNs with global average pooling vs without vs fully connected, finite and infinite width.

Reproduces Xiao, Pennington & Schoenholz, "Disentangling Trainability and Generalization in Deep Neural
Networks" (ICML 2020, arXiv 1912.13053): CNNs without pooling (CNN-Flatten) behave almost like fully connected
nets (FCN) while CNNs with global average pooling (CNN-GAP) generalize differently and better; the NTK's
spectrum explains trainability and generalization with depth in the ordered, critical and chaotic phases.
Full-data anchor for the kernels: Arora et al. 2019 (arXiv 1904.11955), CNTK-GAP vs CNTK-V by depth.

Three parts, each a phase of the run:
1. kernels: NNGP and NTK regression (t = inf, diag_reg chosen on a validation split of the TRAINING set) of
   FCN, CNN-Flatten and CNN-GAP (ReLU, SAME zero padding) on CIFAR-10, images standardised per channel and
   ZCA-whitened with a regularizer (fitted on the training block; "regularized ZCA whitening improves accuracy",
   Lee et al. 2020, arXiv 2007.15801). Seed s uses the disjoint blocks s of the official train pool and of the
   official test pool, so per-seed accuracies are independent replicates and GAP vs Flatten is compared with a
   paired t-test over seeds.
2. finite: the same three specs as Keras nets (NTK parameterisation) trained with SGD on MSE at a fixed
   fraction of the critical learning rate 2 B k / lambda_max(Theta_BB) (B the batch size, k outputs, Theta the
   analytic NTK of the first batch: above it gradient descent on the batch diverges in the kernel regime,
   Lee et al. 2019, arXiv 1902.06720); seed s: block s of data, initialisation s, batch order s.
3. theory: deterministic mean-field quantities of Erf nets (harness.theory.signal_propagation): the critical
   line, q*, chi_1, c*, chi_c*, xi_1, xi_* by two independent routes; the NTK off-diagonal/diagonal ratio at
   criticality (1/3 Erf, 1/4 ReLU); the FCN NTK condition number and mean predictor against depth in the
   three phases on the NT colab's setup (64 train / 32 test CIFAR-10 images at norm sqrt(3072), Erf,
   sigma_b2 = 0.05, sigma_w2 = 1.25 / critical / 1.5); the same for CNN-Flatten and CNN-GAP with CIRCULAR
   padding (every pixel has the same neighbourhood, as the mean-field theory of CNNs assumes; zero padding makes
   border pixels converge to other fixed points) on downsampled images at the depths a tier affords. With
   circular padding the mean over positions of the same-position covariances, all a Flatten readout sees,
   follows the FCN recursion up to the spatial inhomogeneity of the input, which depth washes out; GAP also
   reads the covariances between different positions (Xiao et al. 2020: "CNNs without global average pooling
   behave almost identically to FCNs, but ... CNNs with pooling have markedly different" behaviour).
Optionally (paper tier) the colab's heat map: train/test accuracy of infinite-width gradient descent over
(sigma_w2, depth) with 8 xi_1 and 8 xi_* overlaid.

The folder: config.py (config and tiers), families.py (the metrics), architectures.py (the three specs),
data.py (the CIFAR-10 blocks), phases.py (the run), claims.py, figures.py, experiment.py (EXPERIMENT).
"""
