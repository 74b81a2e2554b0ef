"""Tiny Video Network architectures as data: specs, validation, the registry.

An architecture is the JSON form the original search produced (the six released
networks are in `found_tvns.json` beside this file):

    {"num_frames": 2, "frame_stride": 4, "image_size": 224,
     "blocks": [{"filters": 64, "expand": 4, "repeats": 2,
                 "spatial_type": "std", "spatial_kernel": 4, "spatial_stride": 2,
                 "temporal_type": "maxpool", "temporal_kernel": 2,
                 "temporal_stride": 2, "skip": 0, "squeeze": 0.0,
                 "context_gate": 1, "non_local": 0}, ...]}

The original's multi-stream form (`"input_streams": [...]`, each block naming the
stream it reads) is accepted when it is a plain chain, which is how the released
TVN-Mobile configs run.

    arch = get_architecture("tvn1")
    custom = load_architecture_json("my_tvn.json")

Scaling along the paper's axes is `scaling.scale_architecture`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import re
from typing import Any
from collections.abc import Mapping

from tvn_tf.models.model_input import ModelInput

SPATIAL_TYPES = ("std", "depth", "maxpool", "avgpool", "1std")
TEMPORAL_TYPES = ("1d", "maxpool", "avgpool")
ACTIVATIONS = ("relu", "hswish")

_REQUIRED_BLOCK_FIELDS = tuple(
    "filters expand repeats spatial_type spatial_kernel spatial_stride temporal_type "
    "temporal_kernel temporal_stride skip squeeze context_gate non_local".split()
)
# The activations of a block. The original's `tiny_block` reads them together:
# a block without "act" runs ReLU everywhere, whatever "spatial_act" and
# "temporal_act" say; a block with "act" takes all three. `BlockSpec.to_json`
# therefore always writes all three.
_ACTIVATION_FIELDS = ("act", "spatial_act", "temporal_act")
# JSON name -> (dataclass field, default), written only when not the default.
# Defaults are the original code's ("non_local_pool" is this project's own).
_OPTIONAL_BLOCK_FIELDS = {
    "inv-bottle": ("inverted_bottleneck", False),
    "non_local_pool": ("non_local_pool", 2),
}
_REQUIRED_ARCH_FIELDS = ("num_frames", "frame_stride", "image_size", "blocks")

# Allowed (lowest, highest) of the integer fields. The paper's search space is
# narrower (repeats 1-8, filters 32-2048, kernels and strides 1-8, frames 1-128,
# resolution 32-320); the highest values leave room for scaled versions
# (`scale_architecture`) while refusing sizes that would only hang or exhaust
# memory (a `repeats` of 1e6 builds for ever).
LIMITS = {
    "num_frames": (1, 512),
    "frame_stride": (1, 64),
    "image_size": (8, 1024),
    "filters": (1, 8192),
    "expand": (0, 32),
    "repeats": (1, 64),
    "spatial_kernel": (1, 16),
    "spatial_stride": (1, 16),
    "temporal_kernel": (1, 16),
    "temporal_stride": (1, 16),
    "non_local": (0, 8192),
    "non_local_pool": (1, 64),
}

# The names `blocks.TinyBlock` gives a block's gates, the scopes of their ops in
# a converted model; `deploy.quantization` finds the gates by them.
SQUEEZE_EXCITE_SCOPE = "squeeze_excite"
CONTEXT_GATE_SCOPE = "context_gate"

_BLOCK_NAME = re.compile(r"block(\d+)_(\d+)")


def block_name(block: int, application: int | None = None) -> str:
    """The layer name of application `application` of block `block`, e.g. `block2_1`.

    Without `application`, the name of the whole block (`block2`), as
    `--learning_rate_multipliers` names it.
    """
    return f"block{block}" if application is None else f"block{block}_{application}"


def parse_block_name(name: str) -> tuple[int, int] | None:
    """`(block, application)` of a `block_name` layer name or of a path under it.

    `parse_block_name("block2_1/spatial/conv/kernel")` is `(2, 1)`; a name
    outside every block (`"head/logits"`) gives None.
    """
    match = _BLOCK_NAME.fullmatch(name.split("/", 1)[0])
    return (int(match[1]), int(match[2])) if match else None


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One searched block, applied `repeats` times.

    Attributes mirror the original JSON keys (`inv-bottle` is
    `inverted_bottleneck`). `non_local` is the bottleneck width of a non-local
    block after each application (0: none) and `non_local_pool` the spatial
    pooling of its keys and values (the pooled representation size).
    """

    filters: int
    expand: int
    repeats: int
    spatial_type: str
    spatial_kernel: int
    spatial_stride: int
    temporal_type: str
    temporal_kernel: int
    temporal_stride: int
    skip: bool
    squeeze: float
    context_gate: bool
    non_local: int
    non_local_pool: int = 2
    inverted_bottleneck: bool = False
    act: str = "relu"
    spatial_act: str = "relu"
    temporal_act: str = "relu"

    @property
    def expanded_filters(self) -> int:
        """`E = max(filters * expand, filters)`: the width SE and gating act on."""
        return max(self.filters * self.expand, self.filters)

    def to_json(self) -> dict[str, Any]:
        """Returns the original's JSON form of this block.

        The three activations are always written: the original reads a block
        without "act" as ReLU everywhere.
        """
        out = {name: getattr(self, name) for name in _REQUIRED_BLOCK_FIELDS}
        out["skip"] = int(self.skip)
        out["context_gate"] = int(self.context_gate)
        out.update({name: getattr(self, name) for name in _ACTIVATION_FIELDS})
        for json_name, (field, default) in _OPTIONAL_BLOCK_FIELDS.items():
            value = getattr(self, field)
            if value != default:
                out[json_name] = int(value) if isinstance(value, bool) else value
        return out


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A whole network: its input sampling and its chain of blocks."""

    name: str
    num_frames: int
    frame_stride: int
    image_size: int
    blocks: tuple[BlockSpec, ...]

    @property
    def input(self) -> ModelInput:
        """The clips this network is fed (no class names: those come with training)."""
        return ModelInput(self.num_frames, self.frame_stride, self.image_size)

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form read by `architecture_from_json`."""
        return {
            "num_frames": self.num_frames,
            "frame_stride": self.frame_stride,
            "image_size": self.image_size,
            "blocks": [b.to_json() for b in self.blocks],
        }


def _fail(where: str, field: str, value: Any, allowed: str) -> None:
    raise ValueError(f"{where}: field '{field}' is {value!r}; expected {allowed}.")


def _int_field(where: str, data: Mapping[str, Any], field: str, default: int = 0) -> int:
    value = data.get(field, default)
    low, high = LIMITS[field]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())  # Also inf and NaN.
        or not low <= value <= high
    ):
        _fail(where, field, value, f"an integer in [{low}, {high}]")
    return int(value)


def _choice_field(
    where: str,
    data: Mapping[str, Any],
    field: str,
    allowed: tuple[str, ...],
    default: str | None = None,
) -> str:
    value = data.get(field, default)
    if value not in allowed:
        _fail(where, field, value, "one of " + ", ".join(repr(a) for a in allowed))
    return value


def _flag_field(where: str, data: Mapping[str, Any], field: str, default: bool = False) -> bool:
    value = data.get(field, default)
    if value not in (0, 1, True, False):
        _fail(where, field, value, "0 or 1")
    return bool(value)


def block_from_json(data: Mapping[str, Any], where: str = "block") -> BlockSpec:
    """Validates one block's JSON and returns its `BlockSpec`.

    Args:
      data: The block's JSON object.
      where: How to name the block in errors, e.g. "tvn1 block 2".

    Raises:
      ValueError: naming the block, the field, the value and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {data!r}.")
    missing = [f for f in _REQUIRED_BLOCK_FIELDS if f not in data]
    if missing:
        raise ValueError(
            f"{where}: missing field(s) {', '.join(missing)}; a block needs "
            f"{', '.join(_REQUIRED_BLOCK_FIELDS)}."
        )
    known = set(_REQUIRED_BLOCK_FIELDS) | set(_OPTIONAL_BLOCK_FIELDS) | set(_ACTIVATION_FIELDS)
    unknown = sorted(set(data) - known)
    if unknown:
        _fail(
            where,
            unknown[0],
            data[unknown[0]],
            "no such field; allowed fields are " + ", ".join(sorted(known)),
        )
    squeeze = data["squeeze"]
    if isinstance(squeeze, bool) or not isinstance(squeeze, (int, float)) or not 0 <= squeeze <= 1:
        _fail(where, "squeeze", squeeze, "a number in [0, 1]")
    return BlockSpec(
        filters=_int_field(where, data, "filters"),
        expand=_int_field(where, data, "expand"),
        repeats=_int_field(where, data, "repeats"),
        spatial_type=_choice_field(where, data, "spatial_type", SPATIAL_TYPES),
        spatial_kernel=_int_field(where, data, "spatial_kernel"),
        spatial_stride=_int_field(where, data, "spatial_stride"),
        temporal_type=_choice_field(where, data, "temporal_type", TEMPORAL_TYPES),
        temporal_kernel=_int_field(where, data, "temporal_kernel"),
        temporal_stride=_int_field(where, data, "temporal_stride"),
        skip=_flag_field(where, data, "skip"),
        squeeze=float(squeeze),
        context_gate=_flag_field(where, data, "context_gate"),
        non_local=_int_field(where, data, "non_local"),
        non_local_pool=_int_field(
            where, data, "non_local_pool", _OPTIONAL_BLOCK_FIELDS["non_local_pool"][1]
        ),
        inverted_bottleneck=_flag_field(where, data, "inv-bottle"),
        **_activations(where, data),
    )


def with_named_activations(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block's JSON with each activation it leaves out named, as ReLU.

    The rule of this project's stored forms (a run's `model.json`, a block's
    Keras config, a search trial's architecture), where each activation defaults
    to ReLU on its own: a block naming only `"spatial_act": "hswish"` ends in
    ReLU after hard-swish spatial ops. Naming all three keeps that meaning under
    the original's rule.
    """
    return {**dict.fromkeys(_ACTIVATION_FIELDS, "relu"), **block}


def named_activations_json(data: Any) -> Any:
    """An architecture's stored JSON with every block's activations named (see above)."""
    blocks = data.get("blocks") if isinstance(data, Mapping) else None
    if not isinstance(blocks, list):
        return data
    named = [with_named_activations(b) if isinstance(b, Mapping) else b for b in blocks]
    return {**data, "blocks": named}


def architecture_from_stored_json(data: Mapping[str, Any], name: str = "custom") -> Architecture:
    """`architecture_from_json` of a form this project stored (`named_activations_json`)."""
    return architecture_from_json(named_activations_json(data), name)


def _activations(where: str, data: Mapping[str, Any]) -> dict[str, str]:
    """The block's three activations, read as the original's `tiny_block` reads them.

    Without "act", every activation is ReLU and "spatial_act" / "temporal_act"
    are ignored (still validated). With "act", each of the three is its own
    field; a missing "spatial_act" or "temporal_act" (which the original cannot
    build) is ReLU.
    """
    named = {f: _choice_field(where, data, f, ACTIVATIONS, "relu") for f in _ACTIVATION_FIELDS}
    if "act" not in data:
        return dict.fromkeys(_ACTIVATION_FIELDS, "relu")
    return named


def _flatten_streams(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Turns the original's single-stream chain form into the plain form."""
    streams = data["input_streams"]
    if not isinstance(streams, list) or len(streams) != 1:
        raise ValueError(
            f"{name}: field 'input_streams' is {streams!r}; expected a list "
            "with exactly one input stream (only chains are supported)."
        )
    stream = streams[0]
    if not isinstance(stream, Mapping):
        _fail(
            name,
            "input_streams",
            streams,
            "a list with one JSON object (num_frames, frame_stride, image_size)",
        )
    flat = {k: stream.get(k) for k in ("num_frames", "frame_stride", "image_size")}
    blocks = []
    for i, block in enumerate(data.get("blocks", [])):
        if not isinstance(block, Mapping):
            raise ValueError(f"{name} block {i}: expected a JSON object, got {block!r}.")
        if block.get("inputs", [i]) != [i]:
            _fail(
                f"{name} block {i}",
                "inputs",
                block["inputs"],
                f"[{i}] (each block reads the previous one; only chains are supported)",
            )
        blocks.append({k: v for k, v in block.items() if k != "inputs"})
    flat["blocks"] = blocks
    return flat


def architecture_from_json(data: Mapping[str, Any], name: str = "custom") -> Architecture:
    """Validates an architecture's JSON object and returns an `Architecture`.

    Raises:
      ValueError: naming the block, the field, the value and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{name}: expected a JSON object, got {type(data).__name__}.")
    if "input_streams" in data:
        data = _flatten_streams(data, name)
    missing = [f for f in _REQUIRED_ARCH_FIELDS if data.get(f) is None]
    if missing:
        raise ValueError(
            f"{name}: missing field(s) {', '.join(missing)}; an architecture "
            f"needs {', '.join(_REQUIRED_ARCH_FIELDS)}."
        )
    blocks = data["blocks"]
    if not isinstance(blocks, list) or not blocks:
        _fail(name, "blocks", blocks, "a non-empty list of blocks")
    return Architecture(
        name=name,
        num_frames=_int_field(name, data, "num_frames"),
        frame_stride=_int_field(name, data, "frame_stride"),
        image_size=_int_field(name, data, "image_size"),
        blocks=tuple(block_from_json(b, f"{name} block {i}") for i, b in enumerate(blocks)),
    )


def _load_registry() -> dict[str, Mapping[str, Any]]:
    text = importlib.resources.files("tvn_tf.models").joinpath("found_tvns.json").read_text()
    return json.loads(text)


_REGISTRY = _load_registry()


def list_architectures() -> list[str]:
    """Names of the released architectures, e.g. ['tvn1', ..., 'tvn_mobile_2']."""
    return sorted(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    """Returns a released architecture by name.

    Raises:
      ValueError: if the name is not registered.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model {name!r}; expected one of {', '.join(list_architectures())} "
            "(or load a custom architecture from a JSON file)."
        )
    return architecture_from_json(_REGISTRY[name], name)


def load_architecture_json(path: str | os.PathLike[str]) -> Architecture:
    """Reads and validates a custom architecture from a JSON file.

    Raises:
      ValueError: if the file is missing, not JSON, or not a valid architecture.
    """
    path = os.fspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read architecture file ({e.strerror}).") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}).") from None
    try:
        return architecture_from_json(data, name)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
