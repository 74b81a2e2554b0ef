"""What a TVN is fed: how many frames, how far apart, at what size, and what it names.

One small value for the one fact that four places need:
an `Architecture` (`arch.input`, no class names: an architecture has none), a
trained run's `ModelSpec` (`spec.input`), an export's `model_info.json`
(`ModelInput.from_json`, `to_json`) and the clip pipeline, which reads the
attributes by these very names (`tvn_tf.data.dataset.make_clips` takes a
`ModelInput` as it is).

    model_input = ModelInput(num_frames=2, frame_stride=4, image_size=224,
                             class_names=("Biking", "Diving"))
    model_input.clip_shape   # (2, 224, 224, 3), one preprocessed clip
    model_input.to_json()    # the keys model_info.json holds
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """A model's input sampling and its labels.

    Attributes:
      num_frames: Frames per clip.
      frame_stride: Frames of the video between two frames of a clip.
      image_size: Height and width of a frame after the centre square and resize.
      class_names: One name per class, in label order; empty when unknown (an
        architecture alone has no classes).
    """

    num_frames: int
    frame_stride: int
    image_size: int
    class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        """One preprocessed clip, `(frames, size, size, 3)`."""
        return (self.num_frames, self.image_size, self.image_size, 3)

    def to_json(self) -> dict[str, Any]:
        """The keys of `model_info.json` that describe the input, in its order."""
        return {
            "class_names": list(self.class_names),
            "num_frames": self.num_frames,
            "frame_stride": self.frame_stride,
            "image_size": self.image_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "model_info.json") -> ModelInput:
        """Reads the input keys of a JSON object (`model_info.json`, other keys ignored).

        Raises:
          ValueError: a key is missing or not what it should be (names `where`).
        """
        try:
            return cls(
                num_frames=int(data["num_frames"]),
                frame_stride=int(data["frame_stride"]),
                image_size=int(data["image_size"]),
                class_names=tuple(str(name) for name in data.get("class_names", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{where}: unreadable model input ({type(e).__name__}: {e}); expected "
                "num_frames, frame_stride, image_size and class_names."
            ) from None
