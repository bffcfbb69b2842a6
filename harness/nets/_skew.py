"""Skewed rows: the full (p, p') covariance of a CNN-GAP pair cut into independent, cache-sized groups.

A stride-1 'SAME' Conv maps a covariance K[p, p'] to the mean of K[p + d, p' + d] over the filter offsets d
(Novak et al. 2019, arXiv 1810.05148, Eq. 2.5): p and p' shift together, so the vertical offset
delta = p'_h - p_h of an entry never changes, and the entries of each offset evolve independently of all
others through every Conv, Dense, nonlinearity and residual sum, up to the GlobalAvgPool readout, which sums
them all. Only the zero padding couples an offset to the image edge: K[p, p'] = 0 when p or p' is outside.

Group g in [0, H) pairs the offsets +g (rows p_h in [0, H - g)) and g - H (rows p_h in [H - g, H)): together
exactly H rows, so the H groups hold the (H W)^2 entries once each. Group g is an (R, W, W) tensor over
(row r, p_w, p'_w) with R = H + s; rows p_h of offset +g first, then s zero separator rows (where p'_h has
left the image, read by a filter of half-width <= s), then the rows of offset g - H:

    r < H - g:               p_h = r,      p'_h = r + g
    H - g <= r < H - g + s:  separator (zero)
    r >= H - g + s:          p_h = r - s,  p'_h = r - s + g - H

A Conv's stencil is then an ordinary 2-D stencil on (r, p_w) with (p_w, p'_w) shifting together, the zero
border and the separator rows standing for positions outside the image. Layers that add a bias (Dense, Conv)
multiply by the `valid` row mask so separators stay zero; ReLU and Erf map zero covariance with zero variances
to zero. One group of a 32x32 image is 33 x 32 x 32 entries (264 KiB in float64) where a whole (p, p') pair
is 1M (8 MiB), so a step of a few groups stays in cache.

`row_maps` gives, per group, the image row of p (`rows_a`) and of p' (`rows_b`) for every skewed row, with
`height` (an appended zero row) for separators and for padding groups (group -1, all rows invalid).
"""
from __future__ import annotations

import numpy as np

PADDING_GROUP = -1


def rows(height: int, separator: int) -> int:
  """R: skewed rows per group."""
  return height + separator


def row_maps(height: int, separator: int, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(rows_a, rows_b, valid), each (len(groups), R): image rows of p and p' (`height` where invalid) and the
  mask of rows that are inside the image (module docstring)."""
  g = np.asarray(groups)[:, None]
  r = np.arange(rows(height, separator))[None, :]
  first = r < height - g
  second = r >= height - g + separator
  valid = (first | second) & (g >= 0) & (g < height)
  rows_a = np.where(first, r, r - separator)
  rows_b = np.where(first, r + g, r - separator + g - height)
  return np.where(valid, rows_a, height), np.where(valid, rows_b, height), valid


def skewed_covariance(full: np.ndarray, separator: int) -> np.ndarray:
  """A (H, W, H, W) covariance in the skewed layout (H, R, W, W) (numpy; for tests and inspection)."""
  h = full.shape[0]
  rows_a, rows_b, valid = row_maps(h, separator, np.arange(h))
  padded = np.concatenate([full, np.zeros((1,) + full.shape[1:], full.dtype)], axis=0)
  padded = np.concatenate([padded, np.zeros(padded.shape[:2] + (1,) + full.shape[3:], full.dtype)], axis=2)
  return padded[rows_a, :, rows_b, :]  # (H, R, W, W): the index arrays' axes first
