"""Full-int8 TFLite against Keras on a weak and a confident demo model, and its latency.

    python tools/bench_int8.py [--work_dir=runs/bench_int8] [--weak_epochs=6]
                               [--confident_epochs=30] [--int8_denylist=auto]

Trains the demo recipe (`flags/demo.cfg`, its data and split; the demo data
must be prepared first, as in the README's first command) twice: short
(`--weak_epochs`, the whole schedule in fewer epochs; held-out clip accuracy
in the issue's 50-75% band, small logit margins: the common case on UCF50.
With seed 1 and the demo recipe's auxiliary heads, 6 epochs gave 61%; 5 gave
39% and 8 gave 77%, either side of the band) and in full
(`--confident_epochs`). A run folder that already holds a finished run
(`metrics.json`) is reused. Each is
exported with `python -m tvn_tf.export` (`--int8_denylist`), and once more as
int8 only with `--int8_denylist=none` (`int8_full`: every layer in int8); the
figures of its `parity.json` are printed per variant: top-1 agreement with
Keras and accuracy on the held-out clips, and the layers kept in float.

Latency is measured on TVN-1 at its native 224x224 (2 threads, batch 1,
`--latency_runs`, one model after the other in alternating rounds, medians):
every variant, int8 both fully quantized and with the layers either model
kept in float, all converted from one model with random weights calibrated
on random clips (the weights do not change the time). Any op that falls back
from XNNPACK is printed. A markdown table of both (the
README's export table) is printed before the JSON.

Last line, one JSON object: {"weak_keras_accuracy", "weak_int8_agreement",
"confident_keras_accuracy", "confident_int8_agreement",
"int8_over_float32_latency", "float_layers_cost", "cpu"}; the int8 latency
is that of the int8 model with float layers, and `float_layers_cost` is its
latency over the fully quantized one's, minus 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from tvn_tf import model_dir as model_dir_lib  # noqa: E402

FLAGS = flags.FLAGS
DEMO_FLAGS = os.path.join(ROOT, "flags", "demo.cfg")
flags.DEFINE_string("work_dir", "runs/bench_int8", "Folder for the two runs and exports.")
flags.DEFINE_integer("weak_epochs", 6, "Epochs of the weak model.", lower_bound=1)
flags.DEFINE_integer("confident_epochs", 30, "Epochs of the confident model.", lower_bound=1)
flags.DEFINE_integer("seed", 1, "Training seed of both runs.")
flags.DEFINE_string("int8_denylist", "auto", "Passed to tvn_tf.export.")
flags.DEFINE_integer("latency_runs", 40, "Timed runs per model and round.", lower_bound=1)
flags.DEFINE_integer("latency_rounds", 3, "Alternating rounds of the latency runs.", lower_bound=1)
flags.DEFINE_integer("threads", 2, "Interpreter threads.", lower_bound=1)


def _run(args: list[str]) -> str:
    """Runs a tvn_tf binary, streaming its stderr; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    result = subprocess.run(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    if result.returncode:
        raise RuntimeError(f"{' '.join(args[:2])} failed with exit code {result.returncode}.")
    return result.stdout


def train_and_export(name: str, epochs: int) -> dict:
    """Trains (unless finished before) and exports one demo model; returns its parity.json."""
    model_dir = os.path.join(FLAGS.work_dir, name)
    if not os.path.exists(os.path.join(model_dir, model_dir_lib.METRICS)):
        print(f"bench_int8: training the {name} model ({epochs} epochs)", file=sys.stderr)
        _run(
            [
                "-m",
                "tvn_tf.train",
                f"--flagfile={DEMO_FLAGS}",
                f"--model_dir={model_dir}",
                f"--epochs={epochs}",
                f"--seed={FLAGS.seed}",
            ]
        )
    reports = {}
    for suffix, variants, denylist in (
        ("", "float32,float16,dynamic_int8,int8", FLAGS.int8_denylist),
        ("_int8_full", "int8", "none"),
    ):
        export_dir = os.path.join(FLAGS.work_dir, f"{name}_export{suffix}")
        _run(
            [
                "-m",
                "tvn_tf.export",
                f"--model_dir={model_dir}",
                f"--output_dir={export_dir}",
                f"--variants={variants}",
                f"--int8_denylist={denylist}",
                f"--threads={FLAGS.threads}",
                "--overwrite",
            ]
        )
        with open(os.path.join(export_dir, "parity.json")) as f:
            reports[suffix] = json.load(f)
    report = reports[""]
    report["int8_full"] = reports["_int8_full"]["int8"]
    return report


def latency_at_224(float_layers: list[str]) -> dict:
    """p50 ms of TVN-1 at 224 for every variant, int8 both fully quantized and with `float_layers`."""
    import numpy as np

    from tvn_tf import perf
    from tvn_tf.deploy import quantization, tflite
    from tvn_tf.models import architecture, tvn

    arch = architecture.get_architecture("tvn1")
    model = tvn.build_model(arch, num_classes=10)
    rng = np.random.default_rng(0)
    clips = rng.uniform(-1, 1, (8, arch.num_frames, 224, 224, 3)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="bench_int8_") as tmp:
        path = os.path.join(tmp, "saved_model")
        tflite.save_for_conversion(model, path)
        models = {v: tflite.convert(path, v) for v in ("float32", "float16", "dynamic_int8")}
        analysis = quantization.analyze(path, clips)
        models["int8_full"] = analysis.quantized_model(())
        models["int8"] = analysis.quantized_model(float_layers)
    for name, data in models.items():
        _, fallback = tflite.delegation(data, FLAGS.threads)
        if fallback:
            print(f"bench_int8: {name} at 224: NOT in XNNPACK: {', '.join(fallback)}")
    runners = {name: tflite.TFLiteRunner(data, FLAGS.threads) for name, data in models.items()}
    times = {name: [] for name in runners}
    for _ in range(FLAGS.latency_rounds):
        for name, runner in runners.items():
            runner.set_clip(clips[0])
            times[name].append(
                perf.time_runs(runner.invoke, runs=FLAGS.latency_runs, warmup=3).p50_ms
            )
    return {name: float(np.median(t)) for name, t in times.items()}


def table(latency: dict, weak: dict, confident: dict, float_layers: list[str]) -> str:
    """The README's export table: latency at 224 and agreement on both demo models."""
    rows = [
        "| TFLite variant | p50 ms (TVN-1, 224) | vs float32 | top-1 agreement, weak | "
        "top-1 agreement, confident |",
        "|---|---|---|---|---|",
    ]
    names = {
        "float32": "float32",
        "float16": "float16",
        "dynamic_int8": "dynamic-range int8",
        "int8_full": "full int8, every layer",
        "int8": f"full int8, {', '.join(float_layers) or 'nothing'} in float",
    }
    for key, label in names.items():
        agree = [f"{r[key]['top1_agreement']:.1%}" for r in (weak, confident)]
        if key == "int8":  # What export's --int8_denylist kept in float, per model.
            agree = [
                f"{a} ({', '.join(r['int8']['float_layers']) or 'all int8'})"
                for a, r in zip(agree, (weak, confident))
            ]
        rows.append(
            f"| {label} | {latency[key]:.1f} | {latency[key] / latency['float32']:.2f}x | "
            f"{agree[0]} | {agree[1]} |"
        )
    return "\n".join(rows)


def describe(name: str, report: dict) -> None:
    """Prints `parity.describe_variant`'s line for each variant of one model's report."""
    from tvn_tf.deploy import parity

    for variant in ("float32", "float16", "dynamic_int8", "int8_full", "int8"):
        print(f"{name} {parity.describe_variant(variant, report)}")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from tvn_tf import perf

    try:
        weak = train_and_export("weak", FLAGS.weak_epochs)
        confident = train_and_export("confident", FLAGS.confident_epochs)
    except RuntimeError as e:
        sys.exit(f"bench_int8: {e}")
    describe("weak", weak)
    describe("confident", confident)
    # The latency of keeping in float whatever either model kept.
    float_layers = sorted(
        set(weak["int8"]["float_layers"]) | set(confident["int8"]["float_layers"])
    )
    latency = latency_at_224(float_layers)
    print(f"TVN-1 at 224, batch 1, {FLAGS.threads} threads, {perf.machine_description()}:")
    print(table(latency, weak, confident, float_layers))
    print(
        json.dumps(
            {
                "weak_keras_accuracy": weak["keras"]["accuracy"],
                "weak_int8_agreement": weak["int8"]["top1_agreement"],
                "confident_keras_accuracy": confident["keras"]["accuracy"],
                "confident_int8_agreement": confident["int8"]["top1_agreement"],
                "int8_over_float32_latency": round(latency["int8"] / latency["float32"], 3),
                "float_layers_cost": round(latency["int8"] / latency["int8_full"] - 1, 3),
                "cpu": perf.machine_description(),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
