"""Experiment `width_consistency`: muP networks trained online agree across widths (Vyas et al. 2023).

Reproduces Vyas, Atanasov, Bordelon, Morwani, Sainathan & Pehlevan, "Feature-Learning Networks Are Consistent
Across Widths At Realistic Scales" (NeurIPS 2023, arXiv 2305.18411): networks in the maximal-update
parameterization (muP; Yang & Hu 2021, arXiv 2011.14522), trained online (every step a fresh batch), have
nearly the same loss curves and pointwise test predictions across widths; their finite-width deviations come from
an initialisation-dependent output variance that falls like 1/width and is removed by ensembling, and from a
"bias of narrower width": an ensemble of narrow nets is still worse than one wide net.

Setup: at the CPU tiers an MLP (harness.nets: Flatten, `depth` x (Dense, ReLU), Dense readout) of hidden width N on
CIFAR-10 images average-pooled to 8x8; at the paper tier the CIFAR ResNet-18 family (`nets.cifar_resnet`, width
multipliers of the stage channels; N = the first stage's channels) on 32x32 CIFAR-5m. Images standardised per channel
with the statistics of the stream's first STATS_EXAMPLES images; cross-entropy; SGD on one fresh batch a step, every
width and seed seeing the same stream in the same order (harness.online), so widths differ by width and
initialisation only. muP: `parameterization="mup"` with the SGD rates of `nets.mup_lr_multipliers` (rate x N / base
width); the contrast is the standard parameterization (init N(0, 1/fan_in), one rate for every width). The base
learning rate of each parameterization is tuned at the base (smallest) width on a grid (phase lr_sweep, the grid and
every width's sweep recorded: the learning-rate transfer metrics) and reused at every width.

Phases: lr_sweep (short runs over the grid at every width, best rate per width), train (the full run per
parameterization, width and seed: loss curves, predictions at the logged steps, the last hidden layer's
pre-activations at the end, and for the first `sharpness_seeds` seeds the sharpness at every logged step:
harness.sharpness, lr lambda_max / 2 of the rate-preconditioned Hessian on a fixed training batch, 1 = the edge of
stability of Cohen et al. 2021, arXiv 2103.00065), prediction_metrics (pointwise disagreement with the widest net,
the output variance across seeds, ensembles, the KS distance of pre-activations to the widest net's), coordinates
(the microsoft/mup coordinate check: mean |activation| of each hidden layer after steps 0..3 against width).

The folder: config.py (config, tiers), families.py, data.py (the stream), phases.py, claims.py, figures.py,
experiment.py.
"""
