"""TVN speed on a GPU machine without TensorFlow: Keras on JAX (default) or PyTorch.

    KERAS_BACKEND=jax python tools/bench_gpu.py
    KERAS_BACKEND=jax python tools/bench_gpu.py --models=tvn1 --image_size=32 \\
        --batch_sizes=2 --steps=2 --latency_runs=2 --dtypes=float32   # a CPU smoke run

For each model and dtype (float32, and bfloat16 as Keras' mixed_bfloat16: bfloat16
compute, float32 weights and logits) on random clips:
- forward latency of one clip (inference mode, median of `--latency_runs`), and
- training throughput (clips/s of the compiled `train_on_batch` step: forward,
  backward, SGD with momentum) at each of `--batch_sizes`,
each with the share of the device's peak FLOP/s it reaches, and, for training,
how long 80 epochs of UCF50's ~6,350 training videos of one fold (one clip per
video per epoch) would take at that rate.

FLOPs per clip come from a table (flops.py counts them but needs TensorFlow): the
forward GFLOPs of the README's model table at the native size, scaled by
`(image_size / native)^2` at another size; a training step costs ~3x the forward
pass. Peak FLOP/s come from a table of dense (no sparsity) datasheet figures by
device name; an unknown device (a CPU included) gets no share. float32 shares are
against the plain FP32 rate; XLA on Ampere and later may use TF32 for float32
matmuls, which can lift the share above what FP32 alone allows.

Installs nothing and reads only what is installed (no TensorFlow needed). It keeps
to `--time_budget_s` (configurations not started by then are listed as skipped),
so the whole run fits in 5 minutes. Prints one line per measurement, then one
JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import flags  # noqa: E402

from tvn_tf import cli  # noqa: E402

cli.start()

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines what to time: models, size, batch sizes, dtypes, steps, budget."""
    flags.DEFINE_list("models", ["tvn1", "tvn2"], "Released TVNs to time.")
    flags.DEFINE_integer(
        "image_size",
        0,
        "Input size in pixels; 0 for each model's own (224 for tvn1).",
        lower_bound=0,
    )
    flags.DEFINE_list("batch_sizes", ["32", "128"], "Training batch sizes.")
    flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes: float32, bfloat16.")
    flags.DEFINE_integer("steps", 10, "Timed training steps per configuration.", lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first (compilation).", lower_bound=1)
    flags.DEFINE_integer("latency_runs", 20, "Timed batch-1 forward passes.", lower_bound=1)
    flags.DEFINE_integer("num_classes", 50, "Classifier width (UCF50).", lower_bound=1)
    flags.DEFINE_float(
        "time_budget_s", 240.0, "Start no configuration after this many seconds.", lower_bound=1
    )


# Forward GFLOPs of one clip at the native size (README's model table, counted by
# tvn_tf.models.flops on TensorFlow, 50 classes).
FORWARD_GFLOPS = {
    "tvn1": 8.68,
    "tvn2": 69.33,
    "tvn3": 107.42,
    "tvn4": 51.93,
    "tvn_mobile_1": 10.73,
    "tvn_mobile_2": 10.11,
}
TRAIN_FLOPS_FACTOR = 3.0  # forward + backward (~2x forward).
UCF50_TRAIN_VIDEOS = 6350
EPOCHS = 80
# Dense datasheet peaks, TFLOP/s: (fp32, bf16 or, where a card lacks bf16, fp16).
# Longest matching name first.
PEAK_TFLOPS = [
    ("H100 PCIe", 51.2, 756.0),
    ("H100", 66.9, 989.4),
    ("H200", 66.9, 989.4),
    ("GH200", 66.9, 989.4),
    ("B200", 80.0, 2250.0),
    ("A100", 19.5, 312.0),
    ("A10G", 31.2, 70.0),
    ("A10", 31.2, 125.0),
    ("L40S", 91.6, 362.1),
    ("L4", 30.3, 121.0),
    ("V100", 15.7, 125.0),
    ("T4", 8.1, 65.0),
]


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The device's dense peak for `dtype`, or None when the name is not in the table."""
    for key, fp32, bf16 in sorted(PEAK_TFLOPS, key=lambda row: -len(row[0])):
        if key.lower() in device_name.lower():
            return fp32 if dtype == "float32" else bf16
    return None


def device_name() -> str:
    """The accelerator's name as the backend reports it (or the CPU's)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu: {torch.cuda.get_device_name(0)}"
        return "cpu"
    return backend


def clip_gflops(model: str, image_size: int, native_size: int) -> float | None:
    """Forward GFLOPs of one clip; convolutions scale with the pixel count."""
    if model not in FORWARD_GFLOPS:
        return None
    return FORWARD_GFLOPS[model] * (image_size / native_size) ** 2


def _build(arch, dtype: str):
    import keras

    from tvn_tf.models import tvn

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    try:
        return tvn.TinyVideoNetwork(arch, FLAGS.num_classes)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _clips(arch, batch: int, image_size: int, seed: int = 0):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    clips = rng.random((batch, arch.num_frames, image_size, image_size, 3), dtype=np.float32)
    labels = rng.integers(0, FLAGS.num_classes, batch)
    # On the device once: the timing is the network's, not the host-to-device copy.
    return keras.ops.convert_to_tensor(clips), keras.ops.convert_to_tensor(labels)


def latency(arch, dtype: str, image_size: int) -> dict:
    """Median batch-1 forward time (compiled `predict_on_batch`)."""
    model = _build(arch, dtype)
    clip, _ = _clips(arch, 1, image_size)
    for _ in range(2):
        model.predict_on_batch(clip)  # Returns NumPy: waits for the device.
    times = []
    for _ in range(FLAGS.latency_runs):
        start = time.perf_counter()
        model.predict_on_batch(clip)
        times.append(time.perf_counter() - start)
    return {"p50_ms": round(statistics.median(times) * 1000, 3)}


def throughput(arch, dtype: str, image_size: int, batch: int) -> dict:
    """Training clips/s of the compiled step on one fixed random batch."""
    import keras

    model = _build(arch, dtype)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    clips, labels = _clips(arch, batch, image_size)
    for _ in range(FLAGS.warmup_steps):
        model.train_on_batch(clips, labels)  # Returns a Python float: waits for the device.
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
        loss = model.train_on_batch(clips, labels)
    seconds = time.perf_counter() - start
    clips_per_s = batch * FLAGS.steps / seconds
    return {
        "clips_per_s": round(clips_per_s, 2),
        "step_ms": round(seconds / FLAGS.steps * 1000, 2),
        "loss": float(loss),
        "hours_80_epochs_ucf50": round(EPOCHS * UCF50_TRAIN_VIDEOS / clips_per_s / 3600, 2),
    }


def _check_flags(names: list[str]) -> list[int]:
    from tvn_tf.models import architecture as arch_lib

    unknown = sorted(set(names) - set(arch_lib.list_architectures()))
    if unknown:
        raise ValueError(
            f"--models: unknown {', '.join(unknown)}; expected some of "
            f"{', '.join(arch_lib.list_architectures())}."
        )
    bad = sorted(set(FLAGS.dtypes) - {"float32", "bfloat16"})
    if bad:
        raise ValueError(f"--dtypes: unknown {', '.join(bad)}; expected float32, bfloat16.")
    try:
        batches = [int(b) for b in FLAGS.batch_sizes]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        raise ValueError(
            f"--batch_sizes={','.join(FLAGS.batch_sizes)}: expected positive integers."
        )
    return batches


def _measure(config: dict, arch, forward_gflops: float | None, peak: float | None) -> dict:
    """One latency or training measurement of `config`, with its share of the peak FLOP/s."""
    dtype, size = config["dtype"], config["image_size"]
    try:
        if config["kind"] == "latency":
            row = {**config, **latency(arch, dtype, size)}
            rate = 1000 / row["p50_ms"]
            flops_per_clip = forward_gflops
        else:
            row = {**config, **throughput(arch, dtype, size, config["batch"])}
            rate = row["clips_per_s"]
            flops_per_clip = forward_gflops and forward_gflops * TRAIN_FLOPS_FACTOR
    except Exception as e:  # Out of device memory, mostly: recorded, run goes on.
        return {**config, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    if rate and flops_per_clip:
        row["tflops"] = round(rate * flops_per_clip / 1000, 3)
        row["share_of_peak"] = round(row["tflops"] / peak, 4) if peak else None
    return row


def main(argv):
    if len(argv) > 1:
        sys.exit(f"bench_gpu: unexpected arguments {' '.join(argv[1:])}.")
    import keras

    from tvn_tf.models import architecture as arch_lib
    from tvn_tf.models import scaling

    try:
        batches = _check_flags(FLAGS.models)
    except ValueError as e:
        sys.exit(f"bench_gpu: {e}")
    began = time.perf_counter()
    device = device_name()
    print(f"device: {device}; backend: {keras.backend.backend()}", flush=True)
    results, skipped = [], []
    for name in FLAGS.models:
        native = arch_lib.get_architecture(name)
        size = FLAGS.image_size or native.image_size
        arch = scaling.scale_architecture(native, resolution=size / native.image_size)
        size = arch.image_size  # Rounded to a multiple of 8 (at least 32).
        forward_gflops = clip_gflops(name, size, native.image_size)
        for dtype in FLAGS.dtypes:
            for kind, batch in [("latency", 1)] + [("train", b) for b in batches]:
                config = {
                    "model": name,
                    "image_size": size,
                    "dtype": dtype,
                    "kind": kind,
                    "batch": batch,
                }
                if time.perf_counter() - began > FLAGS.time_budget_s:
                    skipped.append(config)
                    continue
                row = _measure(config, arch, forward_gflops, peak_tflops(device, dtype))
                results.append(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(
        json.dumps(
            {
                "device": device,
                "backend": keras.backend.backend(),
                "results": results,
                "skipped": skipped,
                "wall_s": round(time.perf_counter() - began, 1),
            }
        )
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
