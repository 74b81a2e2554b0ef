"""Labels a video with a trained or exported TVN.

    python -m tvn_tf.predict VIDEO --model_path=exports/demo/saved_model
    python -m tvn_tf.predict VIDEO --model_path=exports/demo/model_int8.tflite --json
    python -m tvn_tf.predict VIDEO --model_path=runs/demo --plot=timeline.png

VIDEO is any file PyAV reads (AVI, MP4, ...). Windows slide over the video:
each is a clip of the model's `num_frames` frames, `frame_stride` apart, as in
training, and windows start every `--hop_seconds`. A video shorter than one
clip is read as if it looped (`tvn_tf.data.sampling`). Frames are centre
squared, resized and normalised by `tvn_tf.data.preprocessing`, inside the
SavedModel or here for a `.tflite` or Keras model. The video's scores are the
mean of its windows' probabilities.

Prints the top-5 labels for the whole video and a timeline (the top label of
each window); `--json` prints one JSON object instead, `--plot=FILE.png` draws
the top classes' probabilities over time (needs matplotlib; its folder must
exist and be writable, checked before predicting). Window times are the
frames' own timestamps, so a variable frame rate video is timed as it plays.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app
from absl import flags

from tvn_tf import cli

cli.start()

from tvn_tf import atomic  # noqa: E402  (after cli.start)
from tvn_tf import model_path_flag  # noqa: E402
from tvn_tf.deploy import loading  # noqa: E402

FLAGS = flags.FLAGS
DEFAULT_FPS = 25.0


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How `predict` reads a video and runs the model.

    Attributes:
      hop_seconds: Time between window starts.
      top_k: Labels shown for the video.
      threads: Threads for the model.
      batch_size: Windows per model call (SavedModel, Keras).
    """

    hop_seconds: float = 0.5
    top_k: int = 5
    threads: int = 2
    batch_size: int = 8


_DEFAULTS = PredictOptions()


def define_flags() -> None:
    """Defines the flags of the binary (not on import: other binaries share names)."""
    model_path_flag.define_flags(
        "A SavedModel (or export) folder, a .tflite file beside "
        "its labels.txt and model_info.json, or a training run's --model_dir."
    )
    flags.DEFINE_float(
        "hop_seconds", _DEFAULTS.hop_seconds, "Time between window starts.", lower_bound=0.0
    )
    flags.DEFINE_integer("top_k", _DEFAULTS.top_k, "Labels shown for the video.", lower_bound=1)
    flags.DEFINE_integer("threads", _DEFAULTS.threads, "Threads for the model.", lower_bound=1)
    flags.DEFINE_integer(
        "batch_size",
        _DEFAULTS.batch_size,
        "Windows per model call (SavedModel, Keras).",
        lower_bound=1,
    )
    flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
    flags.DEFINE_string("plot", None, "Write class probabilities over time to this PNG.")


def load_classifier(
    path: str, threads: int = _DEFAULTS.threads, batch_size: int = _DEFAULTS.batch_size
) -> loading.Runner:
    """Loads `path` to label videos with: `tvn_tf.deploy.loading.load`, its input required.

    Raises:
      ValueError: naming `--model_path` when the path is none of the model
        forms, or a `.tflite` or SavedModel has no `model_info.json`.
    """
    return loading.load(path, threads, batch_size, require_input=True)


def window_indices(num_available: int, num_frames: int, frame_stride: int, hop: int):
    """Frame indices `[windows, num_frames]` of clips starting every `hop` frames.

    Windows cover the video from its first frame to the last start where a clip
    fits; a video shorter than a clip gives one window, looped.
    """
    import numpy as np

    from tvn_tf.data import sampling

    span = sampling.clip_span(num_frames, frame_stride)
    starts = np.arange(0, max(num_available - span, 0) + 1, max(hop, 1))
    return (starts[:, None] + frame_stride * np.arange(num_frames)[None]) % num_available


def predict(
    video_path: str,
    classifier: loading.Runner,
    hop_seconds: float = _DEFAULTS.hop_seconds,
    top_k: int = _DEFAULTS.top_k,
) -> dict:
    """Scores every window of a video and the video as a whole.

    Returns:
      `{"video", "model", "fps", "num_frames", "top": [{"label", "index",
      "probability"}], "windows": [{"start_s", "end_s", "label", "probability"}],
      "class_names", "window_probabilities"}` (the last two for plotting).

    Raises:
      ValueError: naming the file when it is missing or not a readable video.
    """
    import numpy as np

    model_input = classifier.input
    decoded = _decode_windows(video_path, model_input, hop_seconds)
    fps = decoded.fps or DEFAULT_FPS
    # Each frame's own time: a variable frame rate video is not timed by its mean rate.
    times = decoded.times if decoded.times is not None else np.arange(decoded.num_frames) / fps
    ends = np.append(times[1:], times[-1] + 1 / fps)
    indices = decoded.indices.reshape(-1, model_input.num_frames)
    frames = decoded.frames.reshape(
        (len(indices), model_input.num_frames) + decoded.frames.shape[1:]
    )
    probabilities = classifier.probabilities(frames)
    mean = probabilities.mean(0)
    order = np.argsort(-mean)[:top_k]
    return {
        "video": video_path,
        "model": classifier.description,
        "fps": round(fps, 3),
        "num_frames": decoded.num_frames,
        "top": [
            {
                "label": model_input.class_names[i],
                "index": int(i),
                "probability": round(float(mean[i]), 4),
            }
            for i in order
        ],
        "windows": _windows(indices, probabilities, times, ends, model_input.class_names),
        "class_names": model_input.class_names,
        "window_probabilities": probabilities,
    }


def _decode_windows(video_path: str, model_input, hop_seconds: float):
    """The frames of every window of the video (`video.decode_video`).

    Raises:
      ValueError: naming the file when it is missing or not a readable video.
    """
    from tvn_tf.data import video

    if not os.path.isfile(video_path):
        raise ValueError(f"{video_path}: no such file.")

    def select(n, fps):
        # The decoder's frame rate, the same that times the windows.
        hop = round(hop_seconds * (fps or DEFAULT_FPS))
        return window_indices(n, model_input.num_frames, model_input.frame_stride, hop)

    try:
        return video.decode_video(video_path, min_frames=1, select=select)
    except video.VideoError as e:
        raise ValueError(f"{video_path}: {e}") from None


def _windows(indices, probabilities, times, ends, class_names) -> list[dict]:
    """Each window's span (its first frame's time to its last frame's end) and top label."""
    windows = []
    for window, p in zip(indices, probabilities):
        best = int(p.argmax())
        windows.append(
            {
                "start_s": round(float(times[window.min()]), 3),
                "end_s": round(float(ends[window.max()]), 3),
                "label": class_names[best],
                "probability": round(float(p[best]), 4),
            }
        )
    return windows


def format_text(result: dict) -> str:
    """The video's top labels, then one timeline line per window."""
    lines = [
        f"{result['video']}: {result['num_frames']} frames at {result['fps']:g} fps; "
        f"{result['model']}",
        "top labels:",
    ]
    lines += [f"  {t['probability']:6.1%}  {t['label']}" for t in result["top"]]
    lines.append(f"timeline ({len(result['windows'])} windows):")
    lines += [
        f"  {w['start_s']:7.2f}-{w['end_s']:<7.2f}s  {w['probability']:6.1%}  {w['label']}"
        for w in result["windows"]
    ]
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("class_names", "window_probabilities")}


def check_plot_path(path: str) -> None:
    """Refuses, before any prediction, a `--plot` file that could not be written.

    A missing folder is not created (a mistyped path would leave one behind):
    the user names an existing one.

    Raises:
      ValueError: naming `--plot` and what is wrong.
    """
    if not path.endswith(".png"):
        raise ValueError(f"--plot={path}: expected a .png file name.")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib (pip install matplotlib).") from None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--plot={path}: no folder {folder}; create it first, or pick another.")
    if os.path.isdir(path):
        raise ValueError(f"--plot={path} is a folder; expected a .png file name.")
    if not os.access(folder, os.W_OK):
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        why = "its file system is read-only" if read_only else "no permission to write there"
        raise ValueError(f"--plot={path}: cannot write into {folder} ({why}).")


def plot(result: dict, path: str) -> None:
    """Draws the video's top classes' probabilities over time into a PNG.

    Raises:
      ValueError: the file cannot be written (names it); nothing is left behind.
      tvn_tf.atomic.NoSpaceError: its file system is full.
    """
    check_plot_path(path)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    times = [(w["start_s"] + w["end_s"]) / 2 for w in result["windows"]]
    figure, axes = plt.subplots(figsize=(9, 4))
    for top in result["top"]:
        axes.plot(
            times, result["window_probabilities"][:, top["index"]], marker=".", label=top["label"]
        )
    axes.set_xlabel("time (s, window centre)")
    axes.set_ylabel("probability")
    axes.set_ylim(0, 1)
    axes.set_title(os.path.basename(result["video"]))
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    tmp = atomic.temporary_path(path) + ".png"  # savefig picks the format by suffix.
    try:
        figure.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        atomic.raise_if_no_space(e, path, None)
        raise ValueError(f"--plot={path}: cannot write it ({e.strerror or e}).") from None
    finally:
        plt.close(figure)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(
            "Give exactly one VIDEO: python -m tvn_tf.predict VIDEO --model_path=PATH"
        )
    try:
        path = model_path_flag.model_path("predict")
        if FLAGS.plot:
            check_plot_path(FLAGS.plot)  # Before minutes of prediction.
        video_path = argv[1]
        if not os.path.isfile(video_path):
            raise ValueError(f"{video_path}: no such file.")
        options = cli.from_flags(PredictOptions)
        classifier = load_classifier(path, threads=options.threads, batch_size=options.batch_size)
        result = predict(
            video_path, classifier, hop_seconds=options.hop_seconds, top_k=options.top_k
        )
        if FLAGS.plot:
            plot(result, FLAGS.plot)
    except (ValueError, atomic.NoSpaceError) as e:
        sys.exit(f"predict: {e}")
    print(json.dumps(to_json(result)) if FLAGS.json else format_text(result))


if __name__ == "__main__":
    cli.run(main, define_flags)
