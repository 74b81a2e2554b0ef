"""Exports a trained TVN for TensorFlow Serving and for Android (TFLite).

    python -m tvn_tf.export --model_dir=runs/demo --output_dir=exports/demo

writes, all at once (through a temporary folder renamed at the end):

    OUT/saved_model/              serving SavedModel (`tvn_tf.deploy.serving`): uint8
                                  frames of any size in, probabilities and
                                  top-5 class indices and names out
    OUT/model_float32.tflite      the four TFLite variants (`tvn_tf.deploy.tflite`):
    OUT/model_float16.tflite      float clips [1, frames, size, size, 3] in
    OUT/model_dynamic_int8.tflite [-1, 1] in, logits out
    OUT/model_int8.tflite         (full integer, calibrated on training clips,
                                  spread and augmented;
                                  --int8_denylist layers kept in float;
                                  sigmoid input ranges cut where int8
                                  saturates, --int8_sigmoid_ranges; the
                                  classifier's bias corrected for int8's
                                  mean logit shift)
    OUT/quantization_report.csv   int8 error per layer, worst first
                                  (`tvn_tf.deploy.quantization`)
    OUT/labels.txt                one class name per line, in label order
    OUT/model_info.json           frames, stride, resolution, classes, FLOPs
    OUT/parity.json               each variant against the Keras model on
                                  evaluation clips, its latency and the
                                  layers it keeps in float (`tvn_tf.deploy.parity`)

The data and its split default to the training run's (`MODEL_DIR/
train_config.json`); the data flags of `train` override them, by the rule
evaluate follows too (`tvn_tf.model_dir.data_config`). Calibration clips
come from the training groups, parity clips from the test groups (else the
validation groups, else the training groups, with a warning); both are spread
evenly over every class and group, and augmented training clips are added to
the calibration.

One export at a time per output folder: a second one is refused while the
first runs (an flock on `.OUT.export.lock` beside OUT, as `train` locks its
--model_dir). A full disk ends it with one line and removes what it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from absl import app
from absl import flags
from absl import logging

from tvn_tf import atomic
from tvn_tf import data_flags
from tvn_tf import cli
from tvn_tf.models import architecture as arch_lib
from tvn_tf.models import memory

if TYPE_CHECKING:
    import numpy as np


FLAGS = flags.FLAGS
# Bytes each file of an export takes per weight: the SavedModel, then each TFLite variant.
_BYTES_PER_WEIGHT = {"saved_model": 4, "float32": 4, "float16": 2, "dynamic_int8": 1, "int8": 1}


def _export_bytes(model_dir: str, variants: Sequence[str]) -> int | None:
    """About what exporting the run in `model_dir` writes (its weights, once per file); None if unknown."""
    from tvn_tf import model_dir as model_dir_lib

    try:
        spec = model_dir_lib.read_spec(model_dir)
        arch = arch_lib.architecture_from_json(spec.architecture, spec.name)
        params = memory.estimate(arch, spec.num_classes).params
    except ValueError:
        return None
    files = ["saved_model", *variants]
    return params * sum(_BYTES_PER_WEIGHT.get(f, 4) for f in files)


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    from tvn_tf.deploy import quantization

    flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
    flags.DEFINE_string("output_dir", None, "The export folder to create.")
    flags.DEFINE_string("checkpoint", None, "latest (default), best, or a checkpoint prefix.")
    flags.DEFINE_list(
        "variants", ["float32", "float16", "dynamic_int8", "int8"], "TFLite variants to write."
    )
    flags.DEFINE_integer(
        "calibration_clips",
        128,
        "Training clips that calibrate the int8 model, spread over every class and group.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "augmented_calibration_clips",
        128,
        "More calibration clips, drawn from the training videos with the training "
        "augmentation (random crop, flip, brightness, contrast), so that the int8 ranges "
        "cover what new videos bring, not only the training videos' centre crops.",
        lower_bound=0,
    )
    flags.DEFINE_string(
        "int8_denylist",
        "auto",
        "Layers the int8 model keeps in float: auto (always the classifier; the head and "
        "the last block but for its gate convolutions where that block holds at most "
        f"{quantization.MAX_TAIL_FLOPS_SHARE:.0%} of the FLOPs; then the worst layers of "
        "quantization_report.csv, added while int8 agrees with float on under 99% of "
        "training clips the calibration did not use), none (every layer in int8, "
        "as integer-only accelerators need), or layer names from the report's `layer` "
        "column and shell-style patterns over them (block3_1/*: the whole block), "
        "comma-separated.",
    )
    flags.DEFINE_enum(
        "int8_sigmoid_ranges",
        "auto",
        SIGMOID_RANGES,
        "The int8 input range of each sigmoid gate: cut (to +-6.24, where the int8 sigmoid "
        "saturates, so that a few switched-off channels do not coarsen every other gate), "
        "calibrated (min and max over the calibration clips), or auto (cut; with "
        "--int8_denylist=auto, as calibrated where that agrees better on the selection clips).",
    )
    flags.DEFINE_bool(
        "int8_bias_correction",
        True,
        "Take the int8 model's mean shift of each logit on the calibration clips out of the "
        "classifier's bias (no cost at run time).",
    )
    flags.DEFINE_integer(
        "latency_runs", 20, "Timed runs per variant for parity.json's latency.", lower_bound=1
    )
    flags.DEFINE_integer(
        "parity_clips", 200, "At most this many evaluation clips for parity.json.", lower_bound=1
    )
    flags.DEFINE_integer(
        "eval_clips",
        2,
        "Evenly spaced evaluation clips per video (as train's --eval_clips).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "clips_per_video", None, "Deprecated: the old name of --eval_clips.", lower_bound=1
    )
    flags.DEFINE_integer("threads", 2, "Interpreter threads for the parity runs.", lower_bound=1)
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output_dir.")


PARITY_FILE = "parity.json"
SIGMOID_RANGES = ("auto", "cut", "calibrated")


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What `export` writes and the data it measures on.

    Attributes:
      variants: TFLite variants (`tvn_tf.deploy.tflite.VARIANTS`).
      calibration_clips: Training clips for the int8 calibration.
      augmented_calibration_clips: Augmented training clips added to the
        calibration (`augmented_clips`).
      parity_clips: At most this many evaluation clips for `parity.json`.
      eval_clips: Evenly spaced evaluation clips per video.
      threads: Interpreter threads for the parity runs.
      overwrite: Replace an existing output folder.
      int8_denylist: "auto", "none" or comma-separated layer names and patterns (see
        `tvn_tf.deploy.quantization`).
      latency_runs: Timed runs per variant (median in `parity.json`).
      int8_bias_correction: Correct the int8 classifier's bias for int8's mean
        logit shift (`quantization.correct_logit_bias`).
      int8_sigmoid_ranges: One of `SIGMOID_RANGES`: the sigmoid inputs' int8
        ranges cut where the int8 sigmoid saturates
        (`quantization.narrow_sigmoid_inputs`), as calibrated, or (auto) cut
        unless `choose_denylist` finds calibrated ones agree better.
    """

    variants: tuple[str, ...] = ("float32", "float16", "dynamic_int8", "int8")
    calibration_clips: int = 128
    parity_clips: int = 200
    eval_clips: int = 2
    threads: int = 2
    overwrite: bool = False
    int8_denylist: str = "auto"
    latency_runs: int = 20
    int8_bias_correction: bool = True
    int8_sigmoid_ranges: str = "auto"
    augmented_calibration_clips: int = 128


def _log(message: str, start: float) -> None:
    print(f"[export {time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)


def model_info(spec, flops: int, checkpoint: str) -> dict:
    """The facts about an exported model that its users need (`model_info.json`).

    Its input keys are `spec.input.to_json()`, read back by `ModelInput.from_json`.
    """
    model_input = spec.input
    return {
        "name": spec.name,
        "num_classes": model_input.num_classes,
        **model_input.to_json(),
        "head": spec.head,
        "flops": int(flops),
        "checkpoint": checkpoint,
        "tflite_input": (
            f"float32 [1, {', '.join(str(d) for d in model_input.clip_shape)}]"
            ": RGB frames, centre square, bilinear resize, x * 2/255 - 1 "
            "(tvn_tf.data.preprocessing.preprocess_for_eval)"
        ),
        "tflite_output": f"float32 [1, {model_input.num_classes}] logits",
    }


def _spread_clips(
    dataset, groups, spec, count: int, clips_per_video: int, parity: int | None = None
):
    """At most `count` evaluation clips of `groups`, evenly spaced over all their videos.

    Videos come in group and class order, so evenly spaced picks cover every
    group and class instead of the first few videos. With `parity` (0 or 1),
    only every other clip position of each video is a candidate: the even
    ones or the odd ones, so two calls with different parities never share a
    clip.
    """
    import numpy as np

    from tvn_tf.data import dataset as data_lib

    positions = [
        i
        for i in range(dataset.num_videos(groups) * clips_per_video)
        if parity is None or (i % clips_per_video) % 2 == parity
    ]
    picks = np.linspace(0, len(positions) - 1, min(count, len(positions))).round().astype(int)
    keep = {positions[i] for i in picks.tolist()}
    ds = data_lib.make_clips(
        dataset,
        groups,
        spec.input,
        training=False,
        batch_size=1,
        num_clips=clips_per_video,
        deterministic=True,
    )
    clips, labels = [], []
    for i, (clip, label) in enumerate(ds.as_numpy_iterator()):
        if i in keep:
            clips.append(clip)
            labels.append(label)
    return np.concatenate(clips), np.concatenate(labels)


@dataclasses.dataclass(frozen=True)
class ExportClips:
    """The clips an export runs the model on.

    Attributes:
      calibration: Training clips for the int8 calibration: evenly spread
        ones with evaluation preprocessing, then augmented ones
        (`augmented_clips`).
      selection: Other training clips (the odd positions of each video where
        calibration has the even ones), on which `--int8_denylist=auto` picks
        the layers kept in float: a choice judged on the clips that set the
        quantization ranges would flatter the int8 model. None when no
        `auto` int8 variant is written.
      eval_clips: Evaluation clips for `parity.json`, `eval_labels` their labels.
      eval_groups: The groups they come from.
      num_augmented: How many of `calibration` are augmented (the last ones).
    """

    calibration: np.ndarray
    selection: np.ndarray | None
    eval_clips: np.ndarray
    eval_labels: np.ndarray
    eval_groups: tuple[int, ...]
    num_augmented: int = 0


def augmented_clips(dataset, spec, count: int, seed: int = 0) -> np.ndarray:
    """`count` training clips as training draws them: random videos, crops, flips and colours.

    The training videos' centre crops alone calibrate on less than new videos
    (other groups: other people, light, framing) show. On a weak demo model
    whose held-out clips sat close to ties (13.6% within 0.1 logit), int8
    agreed on 93.3% of them; with as many augmented clips added to the
    calibration, 97.3%, but 93.0-98.1% over other draws: it helps on
    average, not reliably. Augmented clips clipped to [-1, 1] lost the gain,
    and widening every calibrated range by a factor did not give it
    (docs/design.md, "int8: augmented calibration").
    The draw is fixed by `seed`: an export is repeatable.
    """
    import numpy as np

    from tvn_tf.data import dataset as data_lib

    ds = data_lib.make_clips(
        dataset,
        dataset.split.train,
        spec.input,
        training=True,
        batch_size=1,
        seed=seed,
        deterministic=True,
    )
    return np.concatenate([clip for clip, _ in ds.take(count).as_numpy_iterator()])


def load_clips(dataset, spec, options: ExportOptions) -> ExportClips:
    """Calibration and selection clips from the training groups, and evaluation clips.

    Each set is evenly spread over its groups' videos (so over every class and
    group), with evaluation preprocessing: what the model sees when deployed.
    Calibration and selection clips are drawn from alternate positions of the
    same videos, so they never share a clip.
    """
    split = dataset.split
    eval_groups = split.test or split.validation or split.train
    if not (split.test or split.validation):
        print(
            "export: warning: the split has no test or validation groups; parity.json is "
            "measured on training clips.",
            file=sys.stderr,
        )
    train_videos = max(dataset.num_videos(split.train), 1)
    # Twice the clips per video that calibration needs: even positions calibrate, odd select.
    per_video = 2 * max(1, math.ceil(options.calibration_clips / train_videos))
    calibration, _ = _spread_clips(
        dataset, split.train, spec, options.calibration_clips, per_video, parity=0
    )
    augmented = ()
    if options.augmented_calibration_clips and "int8" in options.variants:
        import numpy as np

        augmented = augmented_clips(dataset, spec, options.augmented_calibration_clips)
        calibration = np.concatenate([calibration, augmented])
    selection = None
    if parse_denylist(options.int8_denylist) == "auto" and "int8" in options.variants:
        selection, _ = _spread_clips(
            dataset, split.train, spec, options.calibration_clips, per_video, parity=1
        )
    clips, labels = _spread_clips(
        dataset, eval_groups, spec, options.parity_clips, options.eval_clips
    )
    return ExportClips(calibration, selection, clips, labels, tuple(eval_groups), len(augmented))


def export(
    model_dir: str,
    output_dir: str,
    dataset,
    checkpoint: str | None = None,
    options: ExportOptions = ExportOptions(),
) -> dict:
    """Writes the SavedModel, the TFLite variants, labels and parity report of a run.

    Args:
      model_dir: A training run's folder (`tvn_tf.model_dir`).
      output_dir: The folder to create; replaced only with `options.overwrite`.
      dataset: The data and split (`tvn_tf.data.dataset.load_dataset`).
      checkpoint: None (latest), "best", or a checkpoint prefix.
      options: Variants and clip counts.

    Returns:
      The parity report (also in `OUT/parity.json`).

    Raises:
      ValueError: a bad argument, naming it; nothing is written then.
      tflite.FlexOpsError: a variant needs ops outside TFLite's builtins.
    """
    start = time.perf_counter()
    from tvn_tf.deploy import tflite

    for variant in options.variants:
        if variant not in tflite.VARIANTS:
            raise ValueError(
                f"--variants: unknown {variant!r}; expected some of {', '.join(tflite.VARIANTS)}."
            )
    if options.int8_sigmoid_ranges not in SIGMOID_RANGES:
        raise ValueError(
            f"--int8_sigmoid_ranges={options.int8_sigmoid_ranges!r}: expected one of "
            f"{', '.join(SIGMOID_RANGES)}."
        )
    output_dir = os.path.abspath(output_dir)
    check_output_dir(output_dir, model_dir, dataset.config.data_dir, options.overwrite)
    lock = lock_output_dir(output_dir)
    try:
        # Checked again under the lock: an export that just ended may have written it.
        check_output_dir(output_dir, model_dir, dataset.config.data_dir, options.overwrite)
        # What a killed export left: its temporary folder, or the old output it was replacing.
        for base in (os.path.basename(output_dir), os.path.basename(output_dir) + ".old"):
            atomic.remove_stale_temporaries(os.path.dirname(output_dir), base)
        tmp = atomic.temporary_path(output_dir)
        try:
            os.makedirs(tmp)
        except OSError as e:
            atomic.raise_if_no_space(e, tmp, None)
            raise ValueError(
                f"--output_dir={output_dir}: cannot create it ({e.strerror})."
            ) from None
        try:
            report = _export(model_dir, output_dir, tmp, dataset, checkpoint, options, start)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            atomic.remove_own_temporaries(os.path.dirname(output_dir))
            if atomic.is_no_space(e):
                atomic.raise_if_no_space(e, output_dir, _export_bytes(model_dir, options.variants))
            raise
    finally:
        atomic.release_lock(lock)
    _log(f"done: {output_dir}", start)
    return report


def lock_file(output_dir: str) -> str:
    """The lock of an export folder: `.OUT.export.lock` beside it (OUT itself is made last)."""
    parent, name = os.path.split(output_dir)
    return os.path.join(parent, f".{name}.export.lock")


def lock_output_dir(output_dir: str) -> IO[str]:
    """Takes the exclusive lock of an export folder (`atomic.hold_lock` on `lock_file`).

    The lock file stays until the export ends (`atomic.release_lock`); a
    SIGKILLed export leaves it for the next export of that folder to take.

    Raises:
      ValueError: another export holds it (names its pid), or it cannot be created.
    """
    try:
        return atomic.hold_lock(
            lock_file(output_dir),
            f"--output_dir={output_dir} is being written by another export (pid {{pid}}, "
            "lock {lock}); wait for it to end, or choose another --output_dir.",
        )
    except OSError as e:
        raise ValueError(f"--output_dir={output_dir}: cannot create it ({e.strerror}).") from None


def check_output_dir(output_dir: str, model_dir: str, data_dir: str, overwrite: bool) -> None:
    """Refuses an output folder that cannot be written or whose replacement would lose data.

    `--overwrite` deletes the old output folder, so it must not be, or contain,
    the training run or the data (compared as real paths: links and `..` do not
    hide them); and it replaces folders only, never a file.

    Raises:
      ValueError: naming `--output_dir` and what is wrong.
    """
    real = os.path.realpath(output_dir)
    for flag, path in (("--model_dir", model_dir), ("--data_dir", data_dir)):
        if path and os.path.commonpath([real, os.path.realpath(path)]) == real:
            raise ValueError(
                f"--output_dir={output_dir} is or contains {flag}={path}; replacing it "
                "would delete that. Choose another output folder."
            )
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir={output_dir} is a file; expected a folder to create.")
    above = os.path.dirname(output_dir)
    while above and not os.path.exists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    if os.path.exists(above) and not os.path.isdir(above):
        raise ValueError(
            f"--output_dir={output_dir}: {above} is a file; expected a folder to create."
        )
    if os.path.exists(output_dir) and not overwrite:
        raise ValueError(f"--output_dir={output_dir} exists; pass --overwrite to replace it.")


def _export(model_dir, output_dir, tmp, dataset, checkpoint, options, start) -> dict:
    """`export` after its checks: writes everything into `tmp`, then renames it."""
    from tvn_tf import model_dir as model_dir_lib
    from tvn_tf import perf
    from tvn_tf.deploy import parity as parity_lib
    from tvn_tf.deploy import quantization, serving
    from tvn_tf.models import flops as flops_lib

    model, spec, checkpoint_path = model_dir_lib.restore_model(model_dir, checkpoint)
    denylist = parse_denylist(options.int8_denylist)
    if "int8" in options.variants and isinstance(denylist, tuple):
        quantization.check_denylist_names(denylist, model)  # Before minutes of calibration.
    if tuple(dataset.class_names) != tuple(spec.class_names):
        raise ValueError(
            f"--data_dir={dataset.config.data_dir}: its classes "
            f"({len(dataset.class_names)}) differ from the model's "
            f"({spec.num_classes}) in {model_dir}/model.json."
        )
    _log(f"restored {spec.name} from {checkpoint_path}", start)

    loaded = load_clips(dataset, spec, options)
    clips, labels, eval_groups = loaded.eval_clips, loaded.eval_labels, loaded.eval_groups
    selection = "" if loaded.selection is None else f" and {len(loaded.selection)} other ones"
    if loaded.num_augmented:
        selection = f" ({loaded.num_augmented} of them augmented){selection}"
    _log(
        f"{len(loaded.calibration)} calibration clips{selection} (groups "
        f"{list(dataset.split.train)}), {len(clips)} evaluation clips (groups {list(eval_groups)})",
        start,
    )

    flops = flops_lib.count_flops(model)
    info = model_info(spec, flops.forward, checkpoint_path)
    serving.export_saved_model(model, spec, os.path.join(tmp, serving.EXPORT_SUBDIR), info)
    _log("wrote saved_model/", start)

    reference = parity_lib.keras_logits(model, clips)
    outputs, extras = _write_tflite_variants(model, flops, loaded, reference, tmp, options, start)
    report = parity_lib.parity_report(reference, labels, outputs)
    report["eval_groups"] = list(eval_groups)
    report["threads"] = options.threads
    report["machine"] = perf.machine_description()
    for variant, extra in extras.items():
        report[variant].update(extra)
        print(parity_lib.describe_variant(variant, report), file=sys.stderr, flush=True)
    serving.write_labels(os.path.join(tmp, serving.LABELS_FILE), spec.class_names)
    atomic.write_json(os.path.join(tmp, serving.MODEL_INFO_FILE), info)
    atomic.write_json(os.path.join(tmp, PARITY_FILE), report)
    if os.path.exists(output_dir):  # --overwrite
        old = atomic.temporary_path(output_dir + ".old")
        os.replace(output_dir, old)
        os.replace(tmp, output_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output_dir)
    return report


def _write_tflite_variants(
    model, flops, loaded: ExportClips, reference, tmp: str, options, start: float
):
    """Converts, writes and times each TFLite variant; runs each on the evaluation clips.

    Args:
      reference: Keras' logits on `loaded.eval_clips`, for the int8 model's
        agreement before bias correction.

    Returns:
      `(outputs, extras)`: per variant, its logits on `loaded.eval_clips`, and its
      latency, float layers and XNNPACK delegation for `parity.json`.
    """
    from tvn_tf import perf
    from tvn_tf.deploy import quantization, tflite

    outputs, extras = {}, {}
    conversion_model = os.path.join(tmp, ".conversion_saved_model")
    tflite.save_for_conversion(model, conversion_model)
    for variant in options.variants:
        float_layers, correction = [], {}
        if variant == "int8":
            data, float_layers, uncorrected, offsets, narrowed = _int8_model(
                model, conversion_model, loaded, tmp, options, start, flops=flops
            )
            correction["narrowed_sigmoid_inputs"] = {
                layer: [round(low, 4), round(high, 4)] for layer, (low, high) in narrowed.items()
            }
            if offsets is not None:
                before = tflite.TFLiteRunner(uncorrected, threads=options.threads)
                correction["logit_bias_correction"] = [round(float(o), 5) for o in offsets]
                correction["top1_agreement_before_bias_correction"] = quantization.agreement(
                    before(loaded.eval_clips), reference
                )
        else:
            data = tflite.convert(conversion_model, variant)
        path = os.path.join(tmp, tflite.filename(variant))
        with open(path, "wb") as f:
            f.write(data)
        runner = tflite.TFLiteRunner(path, threads=options.threads)
        outputs[variant] = runner(loaded.eval_clips)
        latency = perf.time_runs(runner.invoke, runs=options.latency_runs, warmup=2)
        delegated, fallback = tflite.delegation(data, threads=options.threads)
        extras[variant] = {
            "latency_p50_ms": round(latency.p50_ms, 3),
            "float_layers": float_layers,
            "xnnpack_ops": len(delegated),
            "fallback_ops": fallback,
            **correction,
        }
        _log(f"wrote {tflite.filename(variant)} ({len(data) / 1e6:.1f} MB)", start)
    shutil.rmtree(conversion_model)
    return outputs, extras


def parse_denylist(value: str) -> str | tuple[str, ...]:
    """`--int8_denylist`: "auto", "none" (-> `()`), or comma-separated names and patterns."""
    value = value.strip()
    if value == "auto":
        return "auto"
    if value == "none":
        return ()
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise ValueError(f"--int8_denylist={value!r}: expected auto, none or layer names.")
    return names


def _int8_model(model, conversion_model, loaded: ExportClips, tmp, options, start, *, flops):
    """The full-int8 model; writes quantization_report.csv.

    Calibrated on `loaded.calibration`; `auto` judges each denylist on
    `loaded.selection`, clips the calibration did not see, each with the bias
    correction that the shipped model gets.

    Returns:
      `(data, float_layers, uncorrected, offsets, narrowed)`: the model, the
      layers it keeps in float, the same model without bias correction, the
      per-class logit shift the correction took out (None: not corrected),
      and the sigmoid inputs whose range was cut, with their range before.
    """
    from tvn_tf.deploy import parity as parity_lib
    from tvn_tf.deploy import quantization

    ranges = options.int8_sigmoid_ranges
    analysis = quantization.analyze(
        conversion_model,
        loaded.calibration,
        options.threads,
        narrow_sigmoids=ranges != "calibrated",
    )
    quantization.write_report(analysis.layers, os.path.join(tmp, quantization.REPORT_FILE))
    worst = "; ".join(
        f"{layer.layer} ({layer.op}) {layer.rmse_over_scale:.2f}" for layer in analysis.layers[:3]
    )
    _log(f"int8 error, worst layers (RMSE in quantization steps): {worst}", start)
    denylist, narrow = parse_denylist(options.int8_denylist), True
    if denylist == "auto":
        share, tail = quantization.tail_flops_share(flops), quantization.tail_layers(analysis)
        if share > quantization.MAX_TAIL_FLOPS_SHARE:
            _log(
                f"--int8_denylist=auto: the last block holds {share:.1%} of the FLOPs (over "
                f"{quantization.MAX_TAIL_FLOPS_SHARE:.0%}), too costly in float; it stays int8",
                start,
            )
            tail = []
        elif tail:
            _log(
                f"--int8_denylist=auto: the head and the last block ({share:.1%} of the FLOPs) "
                "stay float but for its gate convolutions",
                start,
            )
        reference = parity_lib.keras_logits(model, loaded.selection)
        denylist, narrow, trace = quantization.choose_denylist(
            analysis,
            loaded.selection,
            reference,
            tail=tail,
            threads=options.threads,
            correct_bias=options.int8_bias_correction,
            try_uncut=ranges == "auto",
        )
        tried = ", ".join(
            f"{count} float{'' if cut or not analysis.narrowed else ' (sigmoid ranges uncut)'}: "
            f"{score:.1%}"
            for count, cut, score in trace
        )
        _log(
            "--int8_denylist=auto: agreement on training clips the calibration did not use, "
            f"with {tried}",
            start,
        )
    else:  # Names and patterns (block3_1/*) -> the layers, as parity.json lists them.
        denylist = analysis.expand(denylist)
    narrowed = analysis.narrowed if narrow else {}
    if narrowed:
        cut = "; ".join(
            f"{layer} [{low:.4g}, {high:.4g}]" for layer, (low, high) in narrowed.items()
        )
        _log(
            f"int8: calibrated range of {len(narrowed)} sigmoid input(s) cut to "
            f"+-{quantization.SIGMOID_SATURATION:.2f}, where the int8 sigmoid saturates: {cut}",
            start,
        )
    elif analysis.narrowed:
        _log("int8: sigmoid input ranges kept as calibrated (they agreed better uncut)", start)
    elif ranges == "calibrated":
        _log("int8: sigmoid input ranges kept as calibrated (--int8_sigmoid_ranges)", start)
    bias = options.int8_bias_correction
    data = analysis.quantized_model(denylist, correct_bias=bias, narrow=narrow)
    _log(f"int8 keeps in float: {', '.join(denylist) or 'nothing'}", start)
    offsets = analysis.logit_offsets(denylist, narrow) if bias else None
    if offsets is None:
        return data, list(denylist), data, None, narrowed
    _log(
        "int8 bias correction: mean logit shift on the calibration clips taken out of the "
        f"classifier's bias (largest {abs(offsets).max():.3f})",
        start,
    )
    uncorrected = analysis.quantized_model(denylist, correct_bias=False, narrow=narrow)
    return data, list(denylist), uncorrected, offsets, narrowed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's save and convert chatter.
    try:
        if not FLAGS.model_dir or not FLAGS.output_dir:
            raise ValueError("--model_dir and --output_dir are required.")
        from tvn_tf import model_dir as model_dir_lib
        from tvn_tf.data import dataset as data_lib

        model_dir_lib.read_spec(FLAGS.model_dir)  # Fails early on a wrong folder.
        eval_clips = cli.renamed(
            "export", "clips_per_video", "eval_clips", FLAGS.clips_per_video, FLAGS.eval_clips
        )
        options = ExportOptions(
            tuple(FLAGS.variants),
            FLAGS.calibration_clips,
            FLAGS.parity_clips,
            eval_clips,
            FLAGS.threads,
            FLAGS.overwrite,
            FLAGS.int8_denylist,
            FLAGS.latency_runs,
            FLAGS.int8_bias_correction,
            FLAGS.int8_sigmoid_ranges,
            FLAGS.augmented_calibration_clips,
        )
        parse_denylist(options.int8_denylist)  # Fails before any work.
        report = export(
            FLAGS.model_dir,
            FLAGS.output_dir,
            data_lib.load_dataset(data_flags.data_config_of_run(FLAGS.model_dir)),
            FLAGS.checkpoint,
            options,
        )
    except (ValueError, atomic.NoSpaceError) as e:  # Includes tflite.FlexOpsError.
        sys.exit(f"export: {e}")
    print(json.dumps(report))


if __name__ == "__main__":
    define_flags()
    app.run(main)
