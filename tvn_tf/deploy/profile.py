"""Where a TVN's TFLite time goes, block by block, in the real interpreter.

LiteRT's profiler (`tvn_tf.deploy.op_profile`) times every op, but
XNNPACK's operators carry no layer names, so it does not say which block an
op belongs to. Here a block's time is the difference between two prefixes of
the network, each converted to the same TFLite variant and timed with XNNPACK:
the network up to and including the block, and the network up to the block
before it. The last row, the head, is the whole model minus the last block.
An int8 prefix ends, as the model does, in a dequantize of its output; an
int8 output instead made no difference beyond the noise (12.5-13.2 ms either
way for TVN-1's prefixes up to blocks 2 and 3 at 224).

Prefixes are timed in alternating rounds (every prefix once per round), and
each prefix's figure is its fastest run over all rounds, so that a drift of
the machine's speed during the measurement spreads over all of them rather
than landing on one block. A block much cheaper than the run-to-run noise can
come out slightly negative; another job on the CPU makes the figures useless
(blocks of -7 to +7 ms in a run beside one).

    rows = block_times(model, "int8", threads=2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class BlockTime:
    """One top-level layer's share of a TFLite model's latency.

    Attributes:
      layer: The Keras layer, e.g. `block0_0` (block 0, first application) or `head`.
      flops: Its FLOPs per clip (`tvn_tf.models.flops`).
      cumulative_ms: Fastest run of the network up to and including this layer.
      ms: This layer's own time: `cumulative_ms` minus the previous row's.
    """

    layer: str
    flops: int
    cumulative_ms: float
    ms: float


def prefixes(model) -> list[tuple[str, object]]:
    """`(layer name, Keras model up to that layer's output)` for every block, then the head.

    The folding of frames into the batch is part of the first block's prefix.
    """
    import keras

    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer) and layer.name != "fold_frames"
    ]
    out = []
    for layer in layers[:-1]:
        out.append((layer.name, keras.Model(model.inputs, layer.output, name=f"upto_{layer.name}")))
    out.append((layers[-1].name, model))
    return out


def block_times(
    model,
    variant: str,
    threads: int = 2,
    rounds: int = 5,
    runs_per_round: int = 6,
    calibration_clips: np.ndarray | None = None,
    progress: bool = False,
) -> list[BlockTime]:
    """Each block's (and the head's) own TFLite latency, from timed prefixes.

    Args:
      model: A Keras TVN from `tvn_tf.models.tvn.TinyVideoNetwork` (any weights:
        timing does not depend on them).
      variant: A TFLite variant of `tvn_tf.deploy.tflite.VARIANTS`.
      threads: Interpreter threads.
      rounds: Alternating rounds; every prefix is timed once per round.
      runs_per_round: Timed runs of each prefix per round (after one untimed).
      calibration_clips: For `int8`: clips to calibrate on; random clips in
        [-1, 1] when None (ranges then differ from a trained model's export,
        the ops and their shapes do not).
      progress: Show a progress bar over the conversions.

    Returns:
      One `BlockTime` per block application, then the head, in network order.
    """
    from tqdm import tqdm

    from tvn_tf import perf
    from tvn_tf.deploy import tflite
    from tvn_tf.models import flops as flops_lib

    if rounds < 1 or runs_per_round < 1:
        raise ValueError(f"rounds={rounds}, runs_per_round={runs_per_round}: expected >= 1.")
    tflite.check_variant(variant)
    clip_shape = tuple(model.input_shape[1:])
    if calibration_clips is None and variant == "int8":
        rng = np.random.default_rng(0)
        calibration_clips = rng.uniform(-1, 1, (8, *clip_shape)).astype(np.float32)
    per_layer = dict(flops_lib.count_flops(model).per_layer)
    clip = np.zeros(clip_shape, np.float32)
    runners = []
    for name, prefix in tqdm(prefixes(model), desc=f"converting ({variant})", disable=not progress):
        data = tflite.convert_model(prefix, variant, calibration_clips)
        runner = tflite.TFLiteRunner(data, threads=threads)
        runner.set_clip(clip)
        runners.append((name, runner.interpreter.invoke))
    fastest = {name: float("inf") for name, _ in runners}
    for _ in range(rounds):
        for name, fn in runners:
            fastest[name] = min(
                fastest[name], perf.time_runs(fn, runs_per_round, warmup=1).fastest_ms
            )
    rows, previous = [], 0.0
    for name, _ in runners:
        rows.append(
            BlockTime(name, per_layer.get(name, 0), fastest[name], fastest[name] - previous)
        )
        previous = fastest[name]
    return rows


def to_json(rows: Sequence[BlockTime]) -> list[dict]:
    """The rows as JSON objects (ms rounded to microseconds)."""
    total = rows[-1].cumulative_ms if rows else 0.0
    return [
        {
            "layer": row.layer,
            "flops": row.flops,
            "ms": round(row.ms, 3),
            "share": round(row.ms / total, 4) if total else None,
        }
        for row in rows
    ]
