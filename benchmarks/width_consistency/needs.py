"""What a `width_consistency` tier's run needs (harness/preflight.py): its phases, the stream and the evaluation
images, its peak memory: the held stream (float32 after pooling) and the kept predictions (every parameterization,
width, seed and logged step on the evaluation set) in host memory; on the device, the models of every
parameterization and width (held for the whole run: phases.Nets) and the widest one's training copy, gradients and
optimizer state. A tier that does not hold the stream (CIFAR-5m) reads it anew for every net in the
phases that train (data.Data.batches)."""
from __future__ import annotations

from typing import Sequence

from harness import preflight
from harness.preflight import DataNeed, array_bytes

from benchmarks.width_consistency.config import WidthConfig

NUM_OUTPUTS = 10
CHANNELS = 3
PARAMETERIZATIONS = 2      # muP and SP
MODEL_COPIES = 4           # weights, gradients, momentum / Adam moments
TRAINING_PHASES = ("lr_sweep", "train", "coordinates", "cnn")   # they train nets on the stream


def parameter_count(config: WidthConfig, width: int | None = None) -> int:
  """Weights of the model of `width` (default: the widest)."""
  width = max(config.widths) if width is None else width
  if config.model == "resnet18":
    from harness.nets import resnet  # pylint: disable=import-outside-toplevel
    multiplier = config.width_multipliers[config.widths.index(width)]
    return int(resnet.parameter_count(multiplier, blocks=config.resnet_blocks))
  pixels = (32 // config.downsample) ** 2
  return pixels * CHANNELS * width + (config.depth - 1) * width ** 2 + width * NUM_OUTPUTS


def needs(config: WidthConfig, seeds: Sequence[int]) -> preflight.Needs:
  phases = ["data", "lr_sweep", "train", "prediction_metrics", "coordinates"] + (["cnn"] if config.cnn_widths else [])
  data = [DataNeed(config.train_dataset, "train", config.stream_examples, "data", streamed=True)]
  if not config.hold_stream:
    data += [DataNeed(config.train_dataset, "train", config.stream_examples, phase, streamed=True)
             for phase in phases if phase in TRAINING_PHASES]
  if config.eval_dataset == config.train_dataset:
    data.append(DataNeed(config.eval_dataset, "test", config.n_eval, "data", streamed=True))
  else:
    data.append(DataNeed(config.eval_dataset, "test", config.n_eval, "data"))
  pixels = (32 // config.downsample) ** 2
  held = config.stream_examples if config.hold_stream else config.held_examples
  predictions = (PARAMETERIZATIONS * len(config.widths) * len(seeds) * len(config.log_steps) * config.n_eval
                 * NUM_OUTPUTS)
  memory = (("held stream", array_bytes(held, pixels * CHANNELS, dtype="float32")),
            ("kept predictions", array_bytes(predictions, dtype="float32")))
  held = PARAMETERIZATIONS * sum(parameter_count(config, width) for width in config.widths)
  model = (("the models of every width (phases.Nets)", array_bytes(held, dtype=config.dtype)),
           ("the widest model's training copy, gradients and optimizer state",
            MODEL_COPIES * array_bytes(parameter_count(config), dtype=config.dtype)))
  return preflight.Needs(phases=tuple(phases), datasets=tuple(data), memory=memory, device_memory=model)
