"""predict under hostile use: a .tflite beside another export's model_info.json, plot
paths that cannot be written, and a variable frame rate video timed by its frames.

All cases run in one child process (`isolated.run_module_cases`), on the
session export, real videos and real tmpfs mounts.
"""

import json
import os
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from tests.isolated import run_module_cases
from tests.mounts import tmpfs
from tvn_tf.data import demo_data, video

# Frame times (ms) with gaps: 25 fps runs broken by pauses of 250-450 ms.
VFR_PTS_MS = (0, 40, 80, 120, 370, 410, 450, 900, 940, 980, 1020, 1060, 1500, 1540, 1580, 1620)


def write_vfr_mp4(path: str, pts_ms=VFR_PTS_MS) -> str:
    """An MP4 whose frames carry the given timestamps (a variable frame rate)."""
    frames = demo_data.render_video(0, 1, 1, num_groups=2, num_frames=len(pts_ms), seed=0)
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for pts, frame in zip(pts_ms, frames):
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:240, :320]), "rgb24")
            out.pts, out.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(out))
        container.mux(stream.encode())
    return path


def _one_line(result) -> str:
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    ours = [line for line in result.stderr.splitlines() if line.startswith("predict:")]
    assert len(ours) == 1 and result.stderr.strip().splitlines()[-1] == ours[0], result.stderr
    return ours[0]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory, export_dir):
    root = tmp_path_factory.mktemp("predict")
    vfr = write_vfr_mp4(str(root / "vfr.mp4"))
    tflite = os.path.join(export_dir, "model_float32.tflite")
    # The .tflite copied beside another export's model_info.json (64 px, 4 classes).
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(tflite, mixed)
    info = json.loads(open(os.path.join(export_dir, "model_info.json")).read())
    info.update(image_size=64, class_names=[*info["class_names"], "Other"], num_classes=4)
    (mixed / "model_info.json").write_text(json.dumps(info))
    model = f"--model_path={tflite}"
    with (
        tmpfs(root / "ro", read_only=True) as read_only,
        tmpfs(root / "full", size="8k") as full,
    ):
        cases = {
            "mixed": [vfr, f"--model_path={mixed / 'model_float32.tflite'}"],
            "no_folder": [vfr, model, f"--plot={root / 'nowhere' / 'plot.png'}"],
            "read_only": [vfr, model, f"--plot={read_only}/plot.png"],
            "full": [vfr, model, f"--plot={full}/plot.png"],
            "vfr": [vfr, model, "--json", "--hop_seconds=0.5"],
        }
        results = run_module_cases("tvn_tf.predict", list(cases.values()))
        left = os.listdir(full) + os.listdir(read_only)
    return {"root": root, "video": vfr, "left": left, **dict(zip(cases, results))}


def test_a_tflite_beside_another_exports_model_info_names_both_files_and_shapes(
    predicted, export_dir
):
    line = _one_line(predicted["mixed"])
    mixed = predicted["root"] / "mixed"
    assert f"--model_path={mixed / 'model_float32.tflite'} takes clips [4, 32, 32, 3]" in line
    assert f"but {mixed / 'model_info.json'} describes clips [4, 64, 64, 3] -> 4 classes" in line
    assert "Dimension mismatch" not in predicted["mixed"].stderr


def test_a_plot_into_a_missing_folder_is_refused_before_predicting(predicted):
    line = _one_line(predicted["no_folder"])
    assert f"nowhere/plot.png: no folder {predicted['root'] / 'nowhere'}; create it" in line
    assert predicted["no_folder"].stdout == ""  # No prediction was made, or printed.
    assert not os.path.exists(predicted["root"] / "nowhere")


def test_a_plot_into_a_read_only_folder_is_refused_before_predicting(predicted):
    line = _one_line(predicted["read_only"])
    assert line.endswith("(its file system is read-only).") and "/ro/plot.png" in line
    assert predicted["read_only"].stdout == ""


def test_a_plot_on_a_full_disk_ends_in_one_line_and_leaves_nothing(predicted):
    line = _one_line(predicted["full"])
    assert line.startswith("predict: no space left on ") and line.endswith("/full/plot.png")
    assert predicted["left"] == []  # No plot.png, no temporary file.


def test_windows_of_a_variable_frame_rate_video_are_timed_by_their_frames(predicted):
    decoded = video.decode_video(predicted["video"], min_frames=1)
    np.testing.assert_allclose(decoded.times, np.array(VFR_PTS_MS) / 1000)
    result = predicted["vfr"]
    assert result.returncode == 0, result.stderr[-3000:]
    windows = json.loads(result.stdout)["windows"]
    # 4 frames 2 apart; hop 0.5 s at the mean rate (16 frames in 1.66 s): every 5th frame.
    assert [w["start_s"] for w in windows] == [0.0, 0.41]
    assert [w["end_s"] for w in windows] == [0.9, 1.5]  # Up to the next frame's time.
