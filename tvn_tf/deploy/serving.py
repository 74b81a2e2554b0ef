"""The SavedModel for TensorFlow Serving: uint8 video frames in, labelled scores out.

Signature `serving_default`:

    frames          uint8  [batch, num_frames, height, width, 3], RGB, any
                    height and width (centre square, bilinear resize and
                    normalisation happen inside, with
                    `tvn_tf.data.preprocessing.preprocess_for_eval`, the
                    code evaluation uses)
 -> probabilities   float32 [batch, num_classes]  softmax of the logits
    top5_indices    int32   [batch, min(5, num_classes)]
    top5_names      string  [batch, min(5, num_classes)]  class names

The class names are constants of the graph; `assets.extra/labels.txt` and
`assets.extra/model_info.json` (ignored by loaders, kept by TF Serving)
describe the model to tools. Loading needs TensorFlow only:

    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = serve(frames=tf.constant(uint8_clips))
"""

from __future__ import annotations

import json
import os

SIGNATURE = "serving_default"
SAVED_MODEL_FILE = "saved_model.pb"
EXPORT_SUBDIR = "saved_model"  # The SavedModel's folder inside an export (`tvn_tf.export`).
INPUT = "frames"
TOP_K = 5
EXTRA_DIR = "assets.extra"
LABELS_FILE = "labels.txt"
MODEL_INFO_FILE = "model_info.json"


def serving_function(model, spec):
    """The `serving_default` function of `model`, a `tf.function` over uint8 frames.

    Args:
      model: The Keras TVN (float clips in, logits out).
      spec: Its `tvn_tf.model_dir.ModelSpec` (`spec.input`: frames, resolution,
        class names).
    """
    import tensorflow as tf

    from tvn_tf.data import preprocessing

    model_input = spec.input
    k = min(TOP_K, model_input.num_classes)
    names = tf.constant(list(model_input.class_names), tf.string)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, model_input.num_frames, None, None, 3], tf.uint8, name=INPUT)
        ],
        autograph=False,
    )
    def serve(frames):
        clips = preprocessing.preprocess_for_eval(frames, model_input.image_size)
        clips = tf.ensure_shape(clips, [None, *model_input.clip_shape])
        probabilities = tf.nn.softmax(model(clips, training=False), axis=-1)
        _, indices = tf.math.top_k(probabilities, k=k)
        return {
            "probabilities": probabilities,
            "top5_indices": indices,
            "top5_names": tf.gather(names, indices),
        }

    return serve


def export_saved_model(model, spec, path: str, model_info: dict) -> None:
    """Writes the serving SavedModel of `model` to `path` (which must not exist).

    Args:
      model: The Keras TVN with trained weights.
      spec: Its `ModelSpec`.
      path: The SavedModel folder to create.
      model_info: Written to `assets.extra/model_info.json`.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serving_function(model, spec))
    archive.write_out(path, verbose=False)
    write_extras(path, spec.class_names, model_info)


def write_extras(folder: str, class_names, model_info: dict) -> None:
    """Writes `labels.txt` and `model_info.json` into `folder/assets.extra`."""
    extra = os.path.join(folder, EXTRA_DIR)
    os.makedirs(extra, exist_ok=True)
    write_labels(os.path.join(extra, LABELS_FILE), class_names)
    with open(os.path.join(extra, MODEL_INFO_FILE), "w") as f:
        json.dump(model_info, f, indent=1)
        f.write("\n")


def write_labels(path: str, class_names) -> None:
    """One class name per line, in label order."""
    with open(path, "w") as f:
        f.write("".join(f"{name}\n" for name in class_names))


def read_labels(path: str) -> list[str]:
    with open(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def is_saved_model(path: str) -> bool:
    """Whether `path` is a SavedModel folder (holds `saved_model.pb`)."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_FILE))


def saved_model_folder(path: str) -> str | None:
    """The SavedModel at `path`: the folder itself, or an export's `saved_model/`; else None."""
    for folder in (path, os.path.join(path, EXPORT_SUBDIR)):
        if is_saved_model(folder):
            return folder
    return None


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
