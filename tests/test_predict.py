"""Labelling a video: windows, every model kind, JSON, plot, and unreadable files."""

import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest

from tvn_tf import predict
from tvn_tf.data import demo_data
from tvn_tf.data import video
from tests.isolated import run_module_cases
from tests.video_fixtures import write_rotated_mp4


@pytest.fixture(scope="module")
def out(export_dir):
    return export_dir


@pytest.fixture(scope="module")
def avi(tmp_path_factory):
    """A 40-frame demo clip of class 1 (OrbitingDot), MPEG-4 AVI, encoded here."""
    path = str(tmp_path_factory.mktemp("videos") / "orbit.avi")
    video.write_avi(path, demo_data.render_video(2, 1, 1, num_groups=2, num_frames=40, seed=0))
    return path


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """A 30-frame H.264 MP4 at 30 fps and an odd size (200x120)."""
    path = str(tmp_path_factory.mktemp("videos") / "clip.mp4")
    frames = demo_data.render_video(0, 1, 1, num_groups=2, num_frames=30, seed=0)[:, :120, :200]
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = 200, 120, "yuv420p"
        for frame in frames:
            container.mux(
                stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                )
            )
        container.mux(stream.encode())
    return path


def test_window_indices_follow_the_training_sampling():
    # 4 frames, stride 2: a clip spans 7 frames; starts every 5 frames up to 20 - 7.
    windows = predict.window_indices(20, 4, 2, hop=5)
    assert windows.tolist() == [[0, 2, 4, 6], [5, 7, 9, 11], [10, 12, 14, 16]]
    # Shorter than one clip: one window, looped.
    assert predict.window_indices(5, 4, 2, hop=5).tolist() == [[0, 2, 4, 1]]


def test_predict_json_on_an_avi_with_the_saved_model(out, avi, run_module):
    result = run_module(
        "tvn_tf.predict", avi, f"--model_path={out}/saved_model", "--json", "--hop_seconds=0.2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["num_frames"] == 40 and report["fps"] == 25
    assert len(report["windows"]) == len(predict.window_indices(40, 4, 2, hop=5)) == 7
    assert [w["start_s"] for w in report["windows"][:2]] == [0.0, 0.2]
    assert len(report["top"]) == 3  # Only 3 classes.
    assert sum(t["probability"] for t in report["top"]) == pytest.approx(1, abs=1e-3)
    assert {t["label"] for t in report["top"]} == {"BouncingBall", "OrbitingDot", "SlidingSquare"}


@pytest.mark.parametrize("kind", ["tflite", "keras"])
def test_tflite_and_keras_agree_with_the_saved_model(out, avi, kind, trained_model_dir):
    saved = predict.predict(avi, predict.load_classifier(os.path.join(out, "saved_model")))
    path = os.path.join(out, "model_float32.tflite") if kind == "tflite" else trained_model_dir
    other = predict.predict(avi, predict.load_classifier(path))
    np.testing.assert_allclose(
        other["window_probabilities"], saved["window_probabilities"], atol=1e-4
    )


def test_predict_text_and_plot_on_an_mp4(out, mp4, tmp_path, run_module):
    png = tmp_path / "timeline.png"
    result = run_module(
        "tvn_tf.predict", mp4, f"--model_path={out}/model_int8.tflite", f"--plot={png}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "30 frames at 30 fps" in text and "top labels:" in text and "timeline (" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_text_file_gets_one_clear_error(out, tmp_path, run_module):
    path = tmp_path / "notes.avi"
    path.write_text("not a video\n" * 20)
    result = run_module("tvn_tf.predict", str(path), f"--model_path={out}/saved_model")
    assert result.returncode != 0
    assert f"predict: {path}: not a readable video" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_model_is_named(avi, tmp_path, run_module):
    result = run_module("tvn_tf.predict", avi, f"--model_path={tmp_path}/nope.tflite")
    assert result.returncode != 0
    assert f"--model_path={tmp_path}/nope.tflite" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("binary", ["predict", "benchmark"])
def test_the_old_model_flag_still_works_with_one_warning_line(avi, tmp_path, binary):
    path = f"{tmp_path}/nope.tflite"
    video = [avi] if binary == "predict" else []
    result, both = run_module_cases(
        f"tvn_tf.{binary}",
        [[*video, f"--model={path}"], [*video, f"--model={path}", f"--model_path={path}"]],
    )
    warnings = [line for line in result.stderr.splitlines() if "--model is deprecated" in line]
    assert warnings == [
        f"{binary}: warning: --model is deprecated here (it names an architecture in train); "
        f"use --model_path={path}."
    ]
    assert result.returncode != 0 and f"--model_path={path}" in result.stderr  # It was used.
    assert both.returncode != 0 and "give --model_path alone" in both.stderr


def test_a_rotated_phone_video_is_labelled_upright(out, tmp_path):
    # The same clip, once stored upright and once stored turned with a display matrix.
    frames = demo_data.render_video(2, 1, 1, num_groups=2, num_frames=12, seed=0)
    upright = write_rotated_mp4(tmp_path / "upright.mp4", frames, 0)
    phone = write_rotated_mp4(tmp_path / "phone.mp4", frames, -90)
    classifier = predict.load_classifier(os.path.join(out, "model_float32.tflite"))
    expected = predict.predict(upright, classifier)["window_probabilities"]
    got = predict.predict(phone, classifier)["window_probabilities"]
    np.testing.assert_allclose(got, expected, atol=0.02)
