"""`load`: one subset of one split, from a mirror when one is configured for the id, else from TFDS."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from harness.data import catalog, mirrors as mirrors_lib, subsets
from harness.data.errors import DataError
from harness.data.split import Split


def _source(spec: catalog.DatasetSpec, mirrors: str | Mapping[str, str] | None, data_dir: str | None,
            manual_dir: str | None, download: bool):
  """The mirror configured for the id, else TFDS (never TFDS when a mirror is configured)."""
  table = mirrors_lib.resolve_mirrors(mirrors)
  if spec.dataset_id in table:
    return mirrors_lib.Mirror(spec.dataset_id, table[spec.dataset_id])
  if spec.tfds_name is None:
    raise DataError(f"{spec.dataset_id} is served only by a mirror: set {mirrors_lib.ENV_VAR} (or --mirrors) "
                    f"to '{spec.dataset_id}=<folder of .npz shards>'")
  from harness.data import tfds_source
  return tfds_source.TfdsSource(spec, data_dir=data_dir, manual_dir=manual_dir, download=download)


def load(dataset_id: str, split: str = "train", size: int | None = None, seed: int | None = 0,
         pool: int | None = None, balanced: bool = False, mirrors: str | Mapping[str, str] | None = None, *,
         data_dir: str | None = None, manual_dir: str | None = None, download: bool = True) -> Split:
  """A deterministic subset of official examples 0..pool-1 of a split.

  size: number of examples (None: the whole pool, in order, no draw). seed: the draw (see subsets.py).
  pool: draw from official indices 0..pool-1 (None: the whole official split). balanced: exactly
  size / num_classes examples of every class. mirrors: a spec string 'id=folder,...', a mapping, or None
  for $HARNESS_MIRRORS. data_dir, manual_dir, download: TFDS options (unused when a mirror serves the id).
  Raises DataError with a one-line message when the request cannot be served.
  """
  spec = catalog.get(dataset_id)
  catalog.check_split(spec, split)
  source = _source(spec, mirrors, data_dir, manual_dir, download)
  official = source.official_size(split)
  pool = official if pool is None else int(pool)
  if not 1 <= pool <= official:
    raise DataError(f"{dataset_id} {split}: pool must be in 1..{official}, got {pool}")
  held = source.capacity(split)
  if pool > held:
    raise DataError(f"{dataset_id} {split}: asked for a pool of the first {pool} examples, the mirror "
                    f"{getattr(source, 'folder', '')} holds {held}")
  if size is None:
    if balanced:
      raise DataError(f"{dataset_id} {split}: a balanced subset needs a size")
    size, seed = pool, None
    chosen = np.arange(pool, dtype=np.int64)
  else:
    if seed is None:
      raise DataError(f"{dataset_id} {split}: a subset of size {size} needs a seed")
    labels = source.labels(split, pool) if balanced else None
    chosen = subsets.choose(int(seed), int(size), pool, labels, spec.num_classes)
  images, labels = source.read(split, chosen)
  if labels.min() < 0 or labels.max() >= spec.num_classes:
    raise DataError(f"{dataset_id} {split} from {source.source}: labels outside 0..{spec.num_classes - 1}")
  return Split(images=images, labels=labels, indices=chosen, dataset_id=dataset_id,
               split=split, source=source.source, checksum=source.checksum(split), num_classes=spec.num_classes,
               pool=pool, seed=seed, balanced=balanced)
