"""tools/make_demo_data.py and `demo_data`: the layout, codec and determinism of both presets.

Files are written at a tiny size by the real tool, every case in one child
process (`run_module_cases`).
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.isolated import run_module_cases
from tvn_tf.data import demo_data, motion_data

TINY = ["--preset=motion", "--num_groups=2", "--clips_per_group=1", "--num_frames=6"]
TINY += ["--width=96", "--height=64", "--workers=1"]
TINY_DEMO = ["--num_groups=2", "--clips_per_group=1", "--num_frames=6", "--workers=1"]


@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory):
    """Every case of the tool, run once: (folder, results)."""
    root = tmp_path_factory.mktemp("demo_data")
    a, b, c, demo, demo_again = (root / name for name in ("a", "b", "c", "demo", "demo_again"))
    cases = [
        [f"--output_dir={a}", *TINY],
        [f"--output_dir={b}", *TINY],
        [f"--output_dir={c}", *TINY, "--seed=1"],
        [f"--output_dir={demo}", *TINY_DEMO],
        [f"--output_dir={demo_again}", *TINY_DEMO],
        [f"--output_dir={root / 'bad1'}", *TINY, "--width=95"],
        [f"--output_dir={root / 'bad2'}", "--width=96", "--height=64"],
        [f"--output_dir={root / 'bad3'}", "--preset=hardest"],
        [f"--output_dir={root / 'bad4'}", *TINY, "--num_classes=21"],
        [f"--output_dir={root / 'bad5'}", "--num_groups=0"],
    ]
    return root, run_module_cases("tools/make_demo_data.py", cases)


def test_bad_flags_are_refused_naming_the_flag(tool_runs):
    root, results = tool_runs
    expected = ["--width", "--width", "--preset", "--num_classes", "--num_groups"]
    for result, flag in zip(results[5:], expected, strict=True):
        assert result.returncode != 0 and flag in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
    assert not any((root / f"bad{i}").exists() for i in (1, 2, 3, 4, 5))


def test_demo_preset_layout_codec_and_determinism(tool_runs):
    root, results = tool_runs
    for result in results[3:5]:
        assert result.returncode == 0, result.stderr[-2000:]
    demo = root / "demo"
    classes = sorted(p.name for p in demo.iterdir())
    assert classes == sorted(spec.name for spec in demo_data.DEMO_CLASSES) and len(classes) == 10
    files = sorted(p.name for p in (demo / "BouncingBall").iterdir())
    assert files == ["v_BouncingBall_g01_c01.avi", "v_BouncingBall_g02_c01.avi"]
    with av.open(str(demo / "BouncingBall" / files[0])) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.codec_tag) == ("mpeg4", "XVID")
        assert (stream.width, stream.height, stream.average_rate, stream.frames) == (
            320,
            240,
            25,
            6,
        )
    # Deterministic given the seed.
    assert (root / "demo_again" / "BouncingBall" / files[0]).read_bytes() == (
        demo / "BouncingBall" / files[0]
    ).read_bytes()


def test_motion_preset_layout_codec_and_determinism(tool_runs):
    root, results = tool_runs
    a, b, c = (root / name for name in "abc")
    for result in results[:3]:
        assert result.returncode == 0, result.stderr[-2000:]

    names = [spec.name for spec in motion_data.MOTION_CLASSES]
    assert len(names) == len(set(names)) >= 20
    assert sorted(p.name for p in a.iterdir()) == sorted(names)
    for name in names:
        assert sorted(p.name for p in (a / name).iterdir()) == [
            f"v_{name}_g01_c01.avi",
            f"v_{name}_g02_c01.avi",
        ]
    files = sorted(p.relative_to(a) for p in a.rglob("*.avi"))
    assert len(files) == 40
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files), "one seed, two results"
    assert sum((a / f).read_bytes() != (c / f).read_bytes() for f in files) == len(files)

    with av.open(str(a / "Collide" / "v_Collide_g02_c01.avi")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.codec_tag) == ("mpeg4", "XVID")
        assert (stream.width, stream.height, stream.average_rate) == (96, 64, 25)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 6 and frames[0].shape == (64, 96, 3)


def test_demo_classes_each_draw_their_own_object():
    names = [spec.name for spec in demo_data.DEMO_CLASSES]
    assert len(set(names)) == len(names) == 10
    assert len({spec.shape for spec in demo_data.DEMO_CLASSES}) >= 8
    first = [
        demo_data.render_video(i, 1, 1, num_groups=7, num_frames=1, seed=0)[0]
        for i in range(len(names))
    ]
    assert all(frame.shape == (240, 320, 3) and frame.dtype == np.uint8 for frame in first)
    # Same group, same background: the classes differ where their objects are.
    assert all(np.abs(f.astype(int) - first[0]).max() > 100 for f in first[1:])
