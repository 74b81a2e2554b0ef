"""Exports a trained TVN for TensorFlow Serving and for Android (TFLite).

    python -m tvn_tf.export --model_dir=runs/demo --output_dir=exports/demo

writes, all at once (through a temporary folder renamed at the end,
`tvn_tf.deploy.export_dir`):

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
                                  mean logit shift: `tvn_tf.deploy.quantization`)
    OUT/quantization_report.csv   int8 error per layer, worst first
                                  (`tvn_tf.deploy.quantization_report`)
    OUT/labels.txt                one class name per line, in label order
    OUT/model_info.json           frames, stride, resolution, classes, FLOPs
    OUT/parity.json               each variant against the Keras model on
                                  evaluation clips, its latency and the
                                  layers it keeps in float (`tvn_tf.deploy.parity`)

The data and its split default to the training run's (`MODEL_DIR/
train_config.json`); the data flags of `train` override them, by the rule
evaluate follows too (`tvn_tf.model_dir.data_config`). The clips each step
runs on are `tvn_tf.deploy.clips`'. The int8 calibration, the longest step,
starts first, in a child process, and runs while the serving SavedModel and the
float variants are written and measured (`tvn_tf.deploy.calibration`).

One export at a time per output folder: a second one is refused while the
first runs (an flock on `.OUT.export.lock` beside OUT, as `train` locks its
--model_dir). A full disk ends it with one line and removes what it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging

from tvn_tf import cli

cli.start()

from tvn_tf import atomic  # noqa: E402  (after cli.start)
from tvn_tf import data_flags  # noqa: E402
from tvn_tf.deploy import calibration  # noqa: E402
from tvn_tf.deploy import clips as clips_lib  # noqa: E402
from tvn_tf.deploy import export_dir  # noqa: E402
from tvn_tf.deploy import quantization  # noqa: E402
from tvn_tf.deploy import tflite  # noqa: E402

FLAGS = flags.FLAGS
PARITY_FILE = "parity.json"
CONVERSION_MODEL = ".conversion_saved_model"  # In the temporary folder; removed.


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What `export` writes and the data it measures on.

    Attributes:
      variants: TFLite variants (`tvn_tf.deploy.tflite.VARIANTS`).
      calibration_clips: Training clips for the int8 calibration.
      parity_clips: At most this many evaluation clips for `parity.json`.
      eval_clips: Evenly spaced evaluation clips per video.
      threads: Interpreter threads for the parity runs.
      overwrite: Replace an existing output folder.
      int8_denylist: "auto", "none" or comma-separated layer names and patterns
        (`quantization.parse_denylist`).
      latency_runs: Timed runs per variant (median in `parity.json`).
      int8_bias_correction: Correct the int8 classifier's bias for int8's mean
        logit shift (`int8_corrections.correct_logit_bias`).
      int8_sigmoid_ranges: One of `quantization.SIGMOID_RANGES`: the sigmoid
        inputs' int8 ranges cut where the int8 sigmoid saturates, as
        calibrated, or (auto) cut unless `choose_denylist` finds calibrated
        ones agree better.
      augmented_calibration_clips: Augmented training clips added to the
        calibration (`clips.augmented_clips`).
      report_clips: Calibration clips, evenly spaced, that
        `quantization_report.csv` measures each layer's int8 error on
        (`int8_analysis.analyze`).
      selection_clips: Training clips the calibration does not use, on which
        `--int8_denylist=auto` judges each denylist.
    """

    variants: tuple[str, ...] = tflite.VARIANTS
    calibration_clips: int = 32
    parity_clips: int = 200
    eval_clips: int = 2
    threads: int = 2
    overwrite: bool = False
    int8_denylist: str = "auto"
    latency_runs: int = 20
    int8_bias_correction: bool = True
    int8_sigmoid_ranges: str = "auto"
    augmented_calibration_clips: int = 32
    report_clips: int = 32
    selection_clips: int = 128

    def check(self) -> None:
        """Refuses unknown variants, sigmoid ranges or denylist values (names the flag)."""
        for variant in self.variants:
            if variant not in tflite.VARIANTS:
                raise ValueError(
                    f"--variants: unknown {variant!r}; expected some of "
                    f"{', '.join(tflite.VARIANTS)}."
                )
        if self.int8_sigmoid_ranges not in quantization.SIGMOID_RANGES:
            raise ValueError(
                f"--int8_sigmoid_ranges={self.int8_sigmoid_ranges!r}: expected one of "
                f"{', '.join(quantization.SIGMOID_RANGES)}."
            )
        quantization.parse_denylist(self.int8_denylist)


_DEFAULTS = ExportOptions()


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    data_flags.define_flags()
    flags.DEFINE_string("model_dir", None, "A training run's --model_dir.")
    flags.DEFINE_string("output_dir", None, "The export folder to create.")
    flags.DEFINE_string("checkpoint", None, "latest (default), best, or a checkpoint prefix.")
    flags.DEFINE_list("variants", list(_DEFAULTS.variants), "TFLite variants to write.")
    flags.DEFINE_integer(
        "latency_runs",
        _DEFAULTS.latency_runs,
        "Timed runs per variant for parity.json's latency.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "parity_clips",
        _DEFAULTS.parity_clips,
        "At most this many evaluation clips for parity.json.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "eval_clips",
        _DEFAULTS.eval_clips,
        "Evenly spaced evaluation clips per video (as train's --eval_clips).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "clips_per_video", None, "Deprecated: the old name of --eval_clips.", lower_bound=1
    )
    flags.DEFINE_integer(
        "threads", _DEFAULTS.threads, "Interpreter threads for the parity runs.", lower_bound=1
    )
    flags.DEFINE_bool("overwrite", _DEFAULTS.overwrite, "Replace an existing --output_dir.")
    _define_int8_flags()


def _define_int8_flags() -> None:
    """The flags of the int8 variant: its calibration, denylist, sigmoid ranges, bias."""
    flags.DEFINE_integer(
        "calibration_clips",
        _DEFAULTS.calibration_clips,
        "Training clips that calibrate the int8 model, spread over every class and group.",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "augmented_calibration_clips",
        _DEFAULTS.augmented_calibration_clips,
        "More calibration clips, drawn from the training videos with the training "
        "augmentation (random crop, flip, brightness, contrast), so that the int8 ranges "
        "cover what new videos bring, not only the training videos' centre crops.",
        lower_bound=0,
    )
    flags.DEFINE_integer(
        "report_clips",
        _DEFAULTS.report_clips,
        "Calibration clips, evenly spaced, on which quantization_report.csv measures each "
        "layer's int8 error (and --int8_denylist=auto ranks the layers it may add).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "selection_clips",
        _DEFAULTS.selection_clips,
        "Training clips the calibration does not use, on which --int8_denylist=auto judges "
        "each set of float layers.",
        lower_bound=1,
    )
    flags.DEFINE_string(
        "int8_denylist",
        _DEFAULTS.int8_denylist,
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
        _DEFAULTS.int8_sigmoid_ranges,
        quantization.SIGMOID_RANGES,
        "The int8 input range of each sigmoid gate: cut (to +-6.24, where the int8 sigmoid "
        "saturates, so that a few switched-off channels do not coarsen every other gate), "
        "calibrated (min and max over the calibration clips), or auto (cut; with "
        "--int8_denylist=auto, as calibrated where that agrees better on the selection clips).",
    )
    flags.DEFINE_bool(
        "int8_bias_correction",
        _DEFAULTS.int8_bias_correction,
        "Take the int8 model's mean shift of each logit on the calibration clips out of the "
        "classifier's bias (no cost at run time).",
    )


def _log(message: str, start: float) -> None:
    print(f"[export {time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)


def export(
    model_dir: str,
    output_dir: str,
    dataset,
    checkpoint: str | None = None,
    options: ExportOptions = _DEFAULTS,
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
    options.check()
    output_dir = os.path.abspath(output_dir)
    data_dir = dataset.config.data_dir
    export_dir.check_output_dir(output_dir, model_dir, data_dir, options.overwrite)
    lock = export_dir.lock_output_dir(output_dir)
    try:
        # Checked again under the lock: an export that just ended may have written it.
        export_dir.check_output_dir(output_dir, model_dir, data_dir, options.overwrite)
        tmp = export_dir.make_temporary(output_dir)
        try:
            report = _export(model_dir, tmp, dataset, checkpoint, options, start)
            export_dir.replace_with(tmp, output_dir)
        except BaseException as e:
            export_dir.discard(tmp, output_dir)
            if atomic.is_no_space(e):
                needed = export_dir.export_bytes(model_dir, options.variants)
                atomic.raise_if_no_space(e, output_dir, needed)
            raise
    finally:
        atomic.release_lock(lock)
    _log(f"done: {output_dir}", start)
    return report


def _export(model_dir, tmp, dataset, checkpoint, options, start) -> dict:
    """`export` after its checks: the steps, each writing into `tmp`."""
    from tvn_tf import model_dir as model_dir_lib
    from tvn_tf import perf
    from tvn_tf.deploy import parity as parity_lib
    from tvn_tf.deploy import serving
    from tvn_tf.models import flops as flops_lib

    model, spec, checkpoint_path = model_dir_lib.restore_model(model_dir, checkpoint)
    _check_model(model, spec, model_dir, dataset, options)
    _log(f"restored {spec.name} from {checkpoint_path}", start)
    loaded = _load_clips(dataset, spec, options, start)

    # The int8 calibration (the longest step, on one thread) starts first and
    # runs in a child beside everything up to the int8 variant.
    conversion_model = os.path.join(tmp, CONVERSION_MODEL)
    tflite.save_for_conversion(model, conversion_model)
    running = None
    if "int8" in options.variants and len(options.variants) > 1:
        running = calibration.start(conversion_model, loaded.calibration, tmp)
    try:
        flops = flops_lib.count_flops(model)
        info = serving.model_info(spec, flops.forward, checkpoint_path)
        serving.export_saved_model(model, spec, os.path.join(tmp, serving.EXPORT_SUBDIR), info)
        _log("wrote saved_model/", start)

        reference = parity_lib.keras_logits(model, loaded.eval_clips)
        outputs, extras = _write_tflite_variants(
            model, flops, loaded, reference, tmp, options, start, running
        )
    finally:
        if running is not None:
            running.stop()
    shutil.rmtree(conversion_model)
    report = parity_lib.parity_report(reference, loaded.eval_labels, outputs)
    report["eval_groups"] = list(loaded.eval_groups)
    report["threads"] = options.threads
    report["machine"] = perf.machine_description()
    for variant, extra in extras.items():
        report[variant].update(extra)
        print(parity_lib.describe_variant(variant, report), file=sys.stderr, flush=True)
    serving.write_labels(os.path.join(tmp, serving.LABELS_FILE), spec.class_names)
    atomic.write_json(os.path.join(tmp, serving.MODEL_INFO_FILE), info)
    atomic.write_json(os.path.join(tmp, PARITY_FILE), report)
    return report


def _check_model(model, spec, model_dir: str, dataset, options: ExportOptions) -> None:
    """Refuses a denylist naming no layer, or data whose classes are not the model's."""
    denylist = quantization.parse_denylist(options.int8_denylist)
    if "int8" in options.variants and isinstance(denylist, tuple):
        quantization.check_denylist_names(denylist, model)  # Before minutes of calibration.
    if tuple(dataset.class_names) != tuple(spec.class_names):
        raise ValueError(
            f"--data_dir={dataset.config.data_dir}: its classes "
            f"({len(dataset.class_names)}) differ from the model's "
            f"({spec.num_classes}) in {model_dir}/model.json."
        )


def _load_clips(dataset, spec, options: ExportOptions, start: float) -> clips_lib.ExportClips:
    """The export's clips (`clips.load_clips`), as the options ask; logs their counts."""
    int8 = "int8" in options.variants
    loaded = clips_lib.load_clips(
        dataset,
        spec,
        calibration_clips=options.calibration_clips,
        parity_clips=options.parity_clips,
        eval_clips=options.eval_clips,
        augmented_calibration_clips=options.augmented_calibration_clips if int8 else 0,
        selection=int8 and quantization.parse_denylist(options.int8_denylist) == "auto",
        selection_clips=options.selection_clips,
    )
    selection = "" if loaded.selection is None else f" and {len(loaded.selection)} other ones"
    if loaded.num_augmented:
        selection = f" ({loaded.num_augmented} of them augmented){selection}"
    _log(
        f"{len(loaded.calibration)} calibration clips{selection} (groups "
        f"{list(dataset.split.train)}), {len(loaded.eval_clips)} evaluation clips "
        f"(groups {list(loaded.eval_groups)})",
        start,
    )
    return loaded


def _write_tflite_variants(
    model,
    flops,
    loaded: clips_lib.ExportClips,
    reference,
    tmp: str,
    options,
    start: float,
    running: calibration.Running | None = None,
):
    """Converts, writes and times each TFLite variant; runs each on the evaluation clips.

    Args:
      reference: Keras' logits on `loaded.eval_clips`, for the int8 model's
        agreement before bias correction.
      running: The int8 calibration, started in a child process (None: the
        int8 variant calibrates in this one).

    Returns:
      `(outputs, extras)`: per variant, its logits on `loaded.eval_clips`, and its
      latency, float layers and XNNPACK delegation for `parity.json`.
    """
    outputs, extras, runners = {}, {}, {}
    for variant in options.variants:
        extras[variant], outputs[variant] = _write_variant(
            variant, model, flops, loaded, reference, tmp, options, start, running, runners
        )
    return outputs, extras


def _write_variant(variant, model, flops, loaded, reference, tmp, options, start, running, runners):
    """Converts and writes one variant; `(its parity.json figures, its logits on the eval clips)`.

    Args:
      running: The int8 calibration started in other processes, or None.
      runners: Each variant written so far -> its `TFLiteRunner` (this one is added).
    """
    from tvn_tf import perf

    conversion_model = os.path.join(tmp, CONVERSION_MODEL)
    float_layers, correction = [], {}
    if variant == "int8":
        calibrated = running.result() if running is not None else None
        int8 = _int8_model(
            model, conversion_model, loaded, tmp, options, start, flops, calibrated, runners
        )
        data, float_layers = int8.data, int8.float_layers
        correction = _int8_figures(int8, loaded, reference, options.threads)
    else:
        data = tflite.convert(conversion_model, variant)
    path = os.path.join(tmp, tflite.filename(variant))
    with open(path, "wb") as f:
        f.write(data)
    runner = runners[variant] = tflite.TFLiteRunner(path, threads=options.threads)
    logits = runner(loaded.eval_clips)
    latency = perf.time_runs(runner.invoke, runs=options.latency_runs, warmup=2)
    delegated, fallback = tflite.delegation(data, threads=options.threads)
    _log(f"wrote {tflite.filename(variant)} ({len(data) / 1e6:.1f} MB)", start)
    figures = {
        "latency_p50_ms": round(latency.p50_ms, 3),
        "float_layers": float_layers,
        "xnnpack_ops": len(delegated),
        "fallback_ops": fallback,
        **correction,
    }
    return figures, logits


def _int8_figures(int8: quantization.Int8Model, loaded, reference, threads: int) -> dict:
    """What `parity.json` adds for the int8 variant: the sigmoid cut and the bias correction."""
    figures = {
        "narrowed_sigmoid_inputs": {
            layer: [round(low, 4), round(high, 4)] for layer, (low, high) in int8.narrowed.items()
        }
    }
    if int8.offsets is not None:
        before = tflite.TFLiteRunner(int8.uncorrected, threads=threads)
        figures["logit_bias_correction"] = [round(float(o), 5) for o in int8.offsets]
        figures["top1_agreement_before_bias_correction"] = quantization.agreement(
            before(loaded.eval_clips), reference
        )
    return figures


def _int8_model(
    model, conversion_model, loaded, tmp, options, start, flops, calibrated=None, runners=None
):
    """The full-int8 model (`quantization.int8_model`); writes quantization_report.csv.

    Calibrated on `loaded.calibration` (`calibrated`: already, by
    `calibration.start`); `auto` judges each denylist on `loaded.selection`,
    clips the calibration did not see. The float model's logits that the bias
    correction and `auto` compare with are the float32 variant's where it was
    written (Keras' to rounding, on XNNPACK: about 30 ms a clip of TVN-1 at
    224 on 2 cores, where Keras takes 0.25 s and the calibrated model 0.2 s).
    """
    float32 = (runners or {}).get("float32")
    keras = lambda clips: parity_lib.keras_logits(model, clips)  # Without a float32 variant.
    from tvn_tf.deploy import int8_analysis
    from tvn_tf.deploy import parity as parity_lib
    from tvn_tf.deploy import quantization_report as report_lib

    analysis = int8_analysis.analyze(
        conversion_model,
        loaded.calibration,
        options.threads,
        narrow_sigmoids=options.int8_sigmoid_ranges != "calibrated",
        report_clips=options.report_clips,
        calibrated=calibrated,
        float_logits=None if float32 is None else float32(loaded.calibration),
    )
    report_lib.write_report(analysis.layers, os.path.join(tmp, report_lib.REPORT_FILE))
    worst = "; ".join(
        f"{layer.layer} ({layer.op}) {layer.rmse_over_scale:.2f}" for layer in analysis.layers[:3]
    )
    _log(f"int8 error, worst layers (RMSE in quantization steps): {worst}", start)
    return quantization.int8_model(
        analysis,
        denylist=options.int8_denylist,
        sigmoid_ranges=options.int8_sigmoid_ranges,
        bias_correction=options.int8_bias_correction,
        threads=options.threads,
        selection=lambda: (loaded.selection, (float32 or keras)(loaded.selection)),
        flops=flops,
        log=lambda message: _log(message, start),
    )


def main(argv: list[str]) -> None:
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
        options = cli.from_flags(
            ExportOptions, variants=tuple(FLAGS.variants), eval_clips=eval_clips
        )
        options.check()  # Fails before any work.
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
    cli.run(main, define_flags)
