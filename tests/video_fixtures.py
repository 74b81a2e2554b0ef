"""Real video files for the data tests, encoded with PyAV (no mocks).

Frame i of a test video is uniformly grey with value `index_value(i)`, so the
frame index survives MPEG-4, JPEG, cropping and resizing, and a test can
assert exactly which frames a clip holds.
"""

import os
from fractions import Fraction

import av
import numpy as np

MAX_INDEX = 31


def index_value(i: int) -> int:
    """Grey level of frame i (steps of 8 survive lossy codecs)."""
    assert 0 <= i <= MAX_INDEX
    return 8 * i + 4


def frame_indices(frames: np.ndarray) -> list[int]:
    """Frame indices from [N, H, W, 3] pixels in [0, 255] (inverse of index_value)."""
    means = np.asarray(frames, np.float64).reshape(len(frames), -1).mean(axis=1)
    return [int(round((m - 4) / 8)) for m in means]


def write_index_video(
    path,
    num_frames: int,
    *,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    audio: bool = False,
    max_b_frames: int = 0,
) -> str:
    """Writes an MPEG-4 (XVID) AVI whose frame i has grey level index_value(i)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    container = av.open(str(path), "w", format="avi")
    stream = container.add_stream(
        "mpeg4", rate=Fraction(fps), options={"flags": "+qscale", "global_quality": str(2 * 118)}
    )
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_tag = "XVID"
    stream.codec_context.max_b_frames = max_b_frames
    if audio:
        audio_stream = container.add_stream("libmp3lame", rate=44100)
    for i in range(num_frames):
        image = np.full((height, width, 3), index_value(i), np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio:
        samples = np.zeros((2, 44100 * num_frames // fps), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for packet in audio_stream.encode(frame):
            container.mux(packet)
        for packet in audio_stream.encode():
            container.mux(packet)
    container.close()
    return str(path)


def write_truncated(source, path, fraction: float) -> str:
    """Copies the first `fraction` of a file's bytes."""
    with open(source, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return str(path)


def make_tree(
    root, classes=("Alpha", "Beta"), groups=(1, 2, 3), clips=2, num_frames=12, **kwargs
) -> list[str]:
    """A UCF50-style tree root/<Class>/v_<Class>_gNN_cMM.avi of index videos."""
    paths = []
    for name in classes:
        for g in groups:
            for c in range(1, clips + 1):
                paths.append(
                    write_index_video(
                        os.path.join(root, name, f"v_{name}_g{g:02d}_c{c:02d}.avi"),
                        num_frames,
                        **kwargs,
                    )
                )
    return paths


def write_rotated_mp4(path, upright_frames, rotation: int) -> str:
    """Writes frames as a phone does: stored turned, with a display matrix to turn them back.

    Args:
      path: The MP4 file to write.
      upright_frames: uint8 [N, H, W, 3] RGB frames as they should be shown.
      rotation: The stream's rotation, counter-clockwise degrees as FFmpeg reports
        it (`frame.rotation`): a multiple of 90. The stored frames are the upright
        ones turned by -rotation, so that a decoder applying it shows them upright.
    """
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in upright_frames]
    height, width = stored[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(
            "mpeg4", rate=Fraction(25), options={"flags": "+qscale", "global_quality": "236"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(rotation)  # The display matrix, as phones write it.
        for frame in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def marked_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Dark frames with a white 8x8 square in the top-left corner (which way is up)."""
    frames = np.full((num_frames, height, width, 3), 40, np.uint8)
    frames[:, :8, :8] = 255
    return frames
