"""Reading and writing AVI videos with PyAV.

PyAV is the decoder because tensorflow-io does not load on TF 2.21. What the
decoder copes with, as found in UCF50:

- 25 and ~30 fps: clips are sampled in frames, and the rate is recorded.
- Audio tracks: only the video stream is demuxed.
- Odd frame sizes (400x226): frames can be resized so the short side has a
  fixed length, keeping the aspect ratio.
- Rotated videos (phones: a display matrix on the stream): frames come out
  upright, turned as a player shows them.
- Packed B-frames (XviD): FFmpeg's MPEG-4 decoder unpacks them; its warnings
  are not forwarded (PyAV leaves FFmpeg logging off by default).
- Truncated files: the readable frames are kept, minus the ones decoded from
  the last packet and from the decoder flush, which may be damaged or out of
  order (a B-frame's future reference arrives without the B-frames before it).
  A file with fewer than `min_frames` frames left is rejected with a reason.

Short videos are not handled here: see `sampling` (the loop rule).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from fractions import Fraction

import av
import numpy as np

# Fewer readable frames than this and a file is rejected.
DEFAULT_MIN_FRAMES = 3

AVI_CODEC = "mpeg4"  # MPEG-4 Part 2, as UCF50 (XviD)
AVI_CODEC_TAG = "XVID"


class VideoError(Exception):
    """A file that cannot be used as a video; the message says why."""


@dataclasses.dataclass(frozen=True)
class DecodedVideo:
    """Frames read from one video file.

    Attributes:
      frames: uint8 [len(indices), height, width, 3] RGB frames.
      indices: Which frames of the video `frames` holds, in order.
      num_frames: How many frames of the video are readable.
      fps: Frame rate from the container (0.0 when unknown).
      note: Empty, or what was wrong but survivable (truncation).
      times: float64 [num_frames], each readable frame's presentation time in
        seconds from the first frame's (pts times the stream's time base), so
        that a variable frame rate video is timed by its frames, not by its
        mean rate; frame index / `fps` where the stream gives no timestamps.
    """

    frames: np.ndarray
    indices: np.ndarray
    num_frames: int
    fps: float
    note: str = ""
    times: np.ndarray | None = None


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side scaled to `short_side`.

    Dimensions are rounded to even numbers (what codecs expect). A
    `short_side` of 0 keeps the size.
    """
    if short_side <= 0 or min(height, width) == short_side:
        return height, width
    scale = short_side / min(height, width)
    return (max(2, 2 * round(height * scale / 2)), max(2, 2 * round(width * scale / 2)))


def upright_quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (0-3) that show a decoded frame upright.

    Phones store frames as the sensor sees them and tag the stream with a
    display matrix (the `rotate` tag of older tools) saying how to turn them for
    display; FFmpeg gives it per frame as `frame.rotation`, counter-clockwise
    degrees. Angles between quarter turns round to the nearest one; mirroring in
    the matrix is not applied (phones do not write it).
    """
    return round((frame.rotation or 0) / 90) % 4


def decode_video(
    path: str | os.PathLike,
    *,
    short_side: int = 0,
    min_frames: int = DEFAULT_MIN_FRAMES,
    select: Callable[[int, float], np.ndarray] | None = None,
) -> DecodedVideo:
    """Decodes a video file to RGB frames.

    All packets are decoded (the frame count of a file is only known that
    way), but only the selected frames are converted to RGB and resized,
    which is the expensive part.

    Args:
      path: The video file.
      short_side: Resize frames so that their short side has this length;
        0 keeps the stored size.
      min_frames: Reject files with fewer readable frames than this.
      select: Maps the number of readable frames and the frame rate (the
        `fps` returned, 0.0 when unknown) to the indices to return (any
        shape; the result is flattened). None returns every frame.

    Returns:
      The `DecodedVideo`; frames are upright (the stream's rotation applied,
      so a portrait phone video gives portrait frames).

    Raises:
      VideoError: empty, not a video, no video stream, or too few readable
        frames. The message is the reason.
    """
    path = os.fspath(path)
    frames, declared, fps, last_packet_start, error = _decode_all(path)
    note = ""
    if error or len(frames) < declared:
        # Keep only frames decoded before the last packet: see module docstring.
        frames = frames[:last_packet_start]
        note = (
            f"truncated ({error or 'fewer frames than declared'}): kept "
            f"{len(frames)} readable frames of {declared} declared"
        )
    if len(frames) < max(min_frames, 1):
        reason = note or f"{len(frames)} decodable frames"
        raise VideoError(f"too few readable frames ({reason}; need {max(min_frames, 1)})")

    n = len(frames)
    indices = (
        np.arange(n) if select is None else np.asarray(select(n, fps), dtype=np.int64).reshape(-1)
    )
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"select returned indices outside [0, {n}): {indices}")
    out = _to_rgb(frames, indices, short_side)
    return DecodedVideo(out, indices, n, fps, note, frame_times(frames, fps))


def _decode_all(path: str) -> tuple[list[av.VideoFrame], int, float, int, str]:
    """Every frame of the video stream, undecoded to RGB yet.

    Returns:
      (frames, frames declared by the stream, fps, index of the first frame
      decoded from the last packet, FFmpeg's error that ended decoding or "").

    Raises:
      VideoError: empty, not a video, or no video stream.
    """
    if os.path.getsize(path) == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"not a readable video ({_ffmpeg_message(e)})") from None
    with container:
        if not container.streams.video:
            raise VideoError("no video stream")
        stream = container.streams.video[0]
        declared = stream.frames or 0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0

        frames, last_packet_start, error = [], 0, ""
        try:
            for packet in container.demux(stream):
                if packet.size:
                    last_packet_start = len(frames)
                frames.extend(packet.decode())
        except (av.FFmpegError, ValueError) as e:
            error = _ffmpeg_message(e)
    return frames, declared, fps, last_packet_start, error


def _to_rgb(frames: list[av.VideoFrame], indices: np.ndarray, short_side: int) -> np.ndarray:
    """uint8 [len(indices), h, w, 3]: the chosen frames, resized and turned upright.

    Each distinct frame is converted once, however often `indices` names it.
    """
    height, width = resized_shape(frames[0].height, frames[0].width, short_side)
    quarter_turns = upright_quarter_turns(frames[0])
    converted = {}
    for i in indices:
        if i not in converted:
            stored = frames[i].to_ndarray(
                width=width, height=height, format="rgb24", interpolation="AREA"
            )
            converted[i] = np.ascontiguousarray(np.rot90(stored, quarter_turns))
    if quarter_turns % 2:
        height, width = width, height
    if not indices.size:
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack([converted[i] for i in indices])


def frame_times(frames: list[av.VideoFrame], fps: float) -> np.ndarray:
    """Seconds of decoded frames from the first one: their own timestamps, else index / fps."""
    if frames and all(frame.pts is not None and frame.time_base for frame in frames):
        times = np.array([float(frame.pts * frame.time_base) for frame in frames])
        return times - times[0]
    return np.arange(len(frames)) / (fps or 25.0)


def write_avi(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 25,
    quality: int = 4,
    max_b_frames: int = 0,
) -> None:
    """Writes RGB frames to an AVI file in UCF50's codec (MPEG-4 Part 2, XVID).

    Args:
      path: The output file.
      frames: uint8 [height, width, 3] RGB frames, all of one even size.
      fps: Frame rate.
      quality: MPEG-4 quantiser scale, 2 (best) to 31.
      max_b_frames: B-frames between references (0 writes none).
    """
    frames = iter(frames)
    first = next(frames)
    container = av.open(os.fspath(path), "w", format="avi")
    try:
        stream = container.add_stream(
            AVI_CODEC,
            rate=Fraction(fps),
            options={"flags": "+qscale", "global_quality": str(quality * 118)},
        )  # 118: FF_QP2LAMBDA
        stream.width, stream.height = first.shape[1], first.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_tag = AVI_CODEC_TAG
        stream.codec_context.max_b_frames = max_b_frames
        for frame in _chain(first, frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _chain(first, rest):
    yield first
    yield from rest


def _ffmpeg_message(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)
