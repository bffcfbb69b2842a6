"""CIFAR-5m as a TFDS dataset builder (manual download).

CIFAR-5m (Nakkiran, Neyshabur & Sedghi 2021, "The Deep Bootstrap Framework", arXiv 2010.08127): about 6
million synthetic CIFAR-10-like 32x32 images, sampled from a generative model and labelled by a classifier
(see the paper), published as six files part0.npz .. part5.npz with arrays `X` uint8 (n, 32, 32, 3) and `Y`
labels 0..9, 1,000,448 images a part.

Splits, as this harness defines them:
  train = part0 .. part4 in that order (5,002,240 images), official index = position in that concatenation;
  test  = part5 (1,000,448 images), official index = position in part5.
Features: `image`, `label` (the CIFAR-10 class names), `id` = 'part{k}_{i:07d}' (part file k, row i), and
`index` (int64, the official index within the split, which subsets and mirrors use).

Importing this module registers the builder with TFDS under the name 'cifar5m'.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from harness.data import catalog

PARTS = catalog.CIFAR5M_PARTS
IMAGE_SHAPE = (32, 32, 3)

_CITATION = """\
@inproceedings{nakkiran2021deep,
  title={The Deep Bootstrap Framework: Good Online Learners are Good Offline Generalizers},
  author={Nakkiran, Preetum and Neyshabur, Behnam and Sedghi, Hanie},
  booktitle={International Conference on Learning Representations},
  year={2021}
}
"""


def part_file(part: int) -> str:
  return f"part{part}.npz"


class Cifar5m(tfds.core.GeneratorBasedBuilder):
  """CIFAR-5m: train = part0..part4, test = part5 (see the module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "train = part0..part4, test = part5; id = part and row, index = official index."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
  Download the six CIFAR-5m parts (about 18 GB; gs://gresearch/cifar5m/part{{0..5}}.npz) and put
  {', '.join(part_file(p) for p in range(6))} in the manual directory:
  `<data_dir>/downloads/manual/` by default, or pass `manual_dir` to harness.data.load (TFDS:
  `tfds.download.DownloadConfig(manual_dir=...)`). Each holds `X` uint8 (n, 32, 32, 3) and `Y` labels.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "index": tfds.features.Scalar(dtype=np.int64),
            "image": tfds.features.Image(shape=IMAGE_SHAPE),
            "label": tfds.features.ClassLabel(names=catalog.CIFAR10_CLASSES),
        }),
        supervised_keys=("image", "label"),
        homepage="https://arxiv.org/abs/2010.08127",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    folder = dl_manager.manual_dir
    missing = [part_file(p) for p in range(6) if not (folder / part_file(p)).exists()]
    if missing:
      raise FileNotFoundError(f"cifar5m: {', '.join(missing)} missing in the manual dir {folder}")
    return {split: self._generate_examples([(p, folder / part_file(p)) for p in parts])
            for split, parts in PARTS.items()}

  def _generate_examples(self, parts: list[tuple[int, epath.Path]]):
    offset = 0
    for part, path in parts:
      with path.open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images, labels = npz["X"], npz["Y"]
      if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE or len(labels) != len(images):
        raise ValueError(f"{path}: expected X uint8 (n, 32, 32, 3) and Y (n,), got X {images.dtype} "
                         f"{images.shape}, Y {labels.shape}")
      for row in range(len(images)):
        key = f"part{part}_{row:07d}"
        yield key, {"id": key, "index": offset + row, "image": images[row], "label": int(labels[row])}
      offset += len(images)
