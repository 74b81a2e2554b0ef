"""Decoding real AVI files with the archive's quirks."""

import av
import numpy as np
import pytest

from tvn_tf.data import video
from tests.video_fixtures import (
    frame_indices,
    marked_frames,
    write_index_video,
    write_rotated_mp4,
    write_truncated,
)


def test_decodes_every_frame_in_order_with_b_frames(tmp_path):
    path = write_index_video(tmp_path / "b.avi", 20, max_b_frames=2)
    decoded = video.decode_video(path)
    assert decoded.num_frames == 20
    assert frame_indices(decoded.frames) == list(range(20))
    assert decoded.fps == 25.0 and decoded.note == ""


def test_three_frame_video(tmp_path):
    decoded = video.decode_video(write_index_video(tmp_path / "3.avi", 3))
    assert frame_indices(decoded.frames) == [0, 1, 2]


def test_audio_track_is_ignored(tmp_path):
    path = write_index_video(tmp_path / "audio.avi", 10, audio=True)
    with av.open(path) as container:
        assert len(container.streams.audio) == 1
    assert frame_indices(video.decode_video(path).frames) == list(range(10))


def test_30_fps(tmp_path):
    seen = []
    decoded = video.decode_video(
        write_index_video(tmp_path / "30.avi", 10, fps=30),
        select=lambda n, fps: seen.append(fps) or range(n),
    )
    assert decoded.fps == pytest.approx(30.0)
    assert seen == [decoded.fps]  # `select` sees the rate the decoder returns: one source.
    assert frame_indices(decoded.frames) == list(range(10))


def test_odd_size_resized_to_short_side(tmp_path):
    path = write_index_video(tmp_path / "wide.avi", 4, width=400, height=226)
    assert video.decode_video(path).frames.shape == (4, 226, 400, 3)
    decoded = video.decode_video(path, short_side=120)
    assert decoded.frames.shape == (4, 120, 212, 3)
    assert frame_indices(decoded.frames) == [0, 1, 2, 3]


def test_select_converts_only_chosen_frames(tmp_path):
    path = write_index_video(tmp_path / "v.avi", 12)
    decoded = video.decode_video(path, select=lambda n, fps: np.array([[n - 1, 0], [5, 5]]))
    assert decoded.num_frames == 12
    assert list(decoded.indices) == [11, 0, 5, 5]
    assert frame_indices(decoded.frames) == [11, 0, 5, 5]


def test_truncated_keeps_readable_prefix(tmp_path):
    full = write_index_video(tmp_path / "full.avi", 30, max_b_frames=2)
    decoded = video.decode_video(write_truncated(full, tmp_path / "cut.avi", 0.8))
    assert "truncated" in decoded.note
    assert 3 <= decoded.num_frames < 30
    # A prefix in display order: no frame out of place, none missing before the cut.
    assert frame_indices(decoded.frames) == list(range(decoded.num_frames))


def test_truncated_to_almost_nothing_is_rejected(tmp_path):
    full = write_index_video(tmp_path / "full.avi", 30)
    with pytest.raises(video.VideoError, match="not a readable video|too few"):
        video.decode_video(write_truncated(full, tmp_path / "cut.avi", 0.05))


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(video.VideoError, match="empty file"):
        video.decode_video(tmp_path / "empty.avi")


def test_text_file_named_avi(tmp_path):
    (tmp_path / "notes.avi").write_text("this is not a video\n" * 20)
    with pytest.raises(video.VideoError, match="not a readable video"):
        video.decode_video(tmp_path / "notes.avi")


def test_min_frames(tmp_path):
    path = write_index_video(tmp_path / "3.avi", 3)
    with pytest.raises(video.VideoError, match="too few readable frames"):
        video.decode_video(path, min_frames=4)


def test_write_avi_matches_ucf50_codec(tmp_path):
    frames = np.zeros((5, 240, 320, 3), np.uint8)
    video.write_avi(tmp_path / "w.avi", frames, fps=25)
    with av.open(str(tmp_path / "w.avi")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.codec_tag) == ("mpeg4", "XVID")
        assert (stream.width, stream.height, stream.average_rate) == (320, 240, 25)


@pytest.mark.parametrize("rotation", [-90, 90, 180, 0])
def test_rotated_phone_video_comes_out_upright(tmp_path, rotation):
    # Upright: portrait 32 wide x 48 high, the marker top-left; stored turned.
    path = write_rotated_mp4(tmp_path / "phone.mp4", marked_frames(5, 48, 32), rotation)
    with av.open(path) as container:
        stored = next(container.decode(video=0))
        assert stored.rotation == (-180 if rotation == 180 else rotation)
        assert (stored.height, stored.width) == ((48, 32) if rotation in (0, 180) else (32, 48))
    for short_side, shape in ((0, (48, 32)), (16, (24, 16))):
        decoded = video.decode_video(path, short_side=short_side)
        assert decoded.frames.shape == (5, *shape, 3)
        corners = decoded.frames[:, [0, -1]][:, :, [0, -1]].mean(axis=(0, 3))
        assert corners[0, 0] > 200 and corners.flatten()[1:].max() < 80, corners
