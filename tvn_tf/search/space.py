"""The architecture search space as data: what is searched, its priors, sampling and mutation.

Every searched value is a field of `tvn_tf.models.architecture` (the JSON form of
`found_tvns.json`), drawn uniformly from a list of choices: the paper's ranges
(resolution 32-320, frames 1-128, frame stride 1-25, 2-10 blocks, filters
32-2048, kernels and strides 1-8, repeats 1-8), narrowed by `SpaceConfig`.

    space = SearchSpace(SpaceConfig(resolution=(32, 64), frames=(1, 4)))
    rng = np.random.default_rng(0)
    arch = space.sample(rng)                       # an `Architecture`
    child, mutation = space.mutate(arch, rng)      # exactly one part changed
    key = canonical_key(child)                     # equal for equivalent networks

Only ReLU blocks without inverted bottlenecks are searched (the paper's block);
every op they use converts to builtin TFLite ops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import numpy as np

from tvn_tf.models import architecture as arch_lib

# The paper's ranges (Piergiovanni et al., "Tiny Video Networks", section 3).
PAPER_RANGES = {
    "resolution": (32, 320),
    "frames": (1, 128),
    "frame_stride": (1, 25),
    "blocks": (2, 10),
    "filters": (32, 2048),
    "repeats": (1, 8),
}
RESOLUTION_STEP = 16
SPATIAL_TYPES = ("std", "depth", "avgpool", "maxpool")
TEMPORAL_TYPES = ("1d", "avgpool", "maxpool")

# Per-clip sizes beyond which a candidate is redrawn before it is built: it
# would take minutes to build or time and could exhaust memory, while the
# latency limits of the paper are met by networks orders of magnitude smaller.
MAX_ACTIVATION = 1 << 26  # elements of the largest tensor of one clip
MAX_ATTENTION = 1 << 24  # elements of a non-local block's attention matrix
MAX_PARAMS_ESTIMATE = 300_000_000


_BLOCK_DEFAULTS = {"non_local_pool": 2}  # Fields `BlockSpec.to_json` leaves out at their default.
_ACTIVATIONS = ("act", "spatial_act", "temporal_act")  # A block's, each "relu" by default.


def _full_json(arch: arch_lib.Architecture) -> dict[str, Any]:
    """`arch.to_json()` with every searched block field present."""
    data = arch.to_json()
    data["blocks"] = [{**_BLOCK_DEFAULTS, **b} for b in data["blocks"]]
    return data


def _ladder(low: int, high: int) -> tuple[int, ...]:
    """1, 2, 3, 4, 6, 8, 12, 16, ...: powers of two and 1.5 times them, within [low, high]."""
    values, p = set(), 1
    while p <= high:
        values.update(v for v in (p, p + p // 2) if low <= v <= high)
        p *= 2
    values.update((low, high))
    return tuple(sorted(values))


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """Ranges that narrow the paper's space (inclusive `(low, high)` pairs)."""

    resolution: tuple[int, int] = PAPER_RANGES["resolution"]
    frames: tuple[int, int] = PAPER_RANGES["frames"]
    frame_stride: tuple[int, int] = PAPER_RANGES["frame_stride"]
    blocks: tuple[int, int] = PAPER_RANGES["blocks"]
    filters: tuple[int, int] = PAPER_RANGES["filters"]
    repeats: tuple[int, int] = PAPER_RANGES["repeats"]

    def to_json(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


# Field -> LIMITS key, for the ranges checked against architecture.LIMITS.
_LIMIT_OF = {
    "resolution": "image_size",
    "frames": "num_frames",
    "frame_stride": "frame_stride",
    "filters": "filters",
    "repeats": "repeats",
}


def check_space_config(config: SpaceConfig) -> None:
    """Raises ValueError naming the flag whose range is empty or outside the architecture limits."""
    for name, (low, high) in dataclasses.asdict(config).items():
        limit = arch_lib.LIMITS.get(_LIMIT_OF.get(name, ""), (1, 64))
        if name == "resolution":
            limit = (32, limit[1])
        if not limit[0] <= low <= high <= limit[1]:
            raise ValueError(
                f"--{name}={low},{high}; expected LOW,HIGH with {limit[0]} <= LOW <= HIGH <= "
                f"{limit[1]}."
            )


class SearchSpace:
    """Choices per searched field (uniform priors), sampling and one-part mutation."""

    def __init__(self, config: SpaceConfig = SpaceConfig()):
        check_space_config(config)
        self.config = config
        lo, hi = config.resolution
        sizes = [s for s in range(32, hi + 1, RESOLUTION_STEP) if s >= lo]
        self.input_choices: dict[str, tuple[int, ...]] = {
            "image_size": tuple(sorted({*sizes, lo, hi})),
            "num_frames": _ladder(*config.frames),
            "frame_stride": tuple(range(config.frame_stride[0], config.frame_stride[1] + 1)),
        }
        self.num_blocks = tuple(range(config.blocks[0], config.blocks[1] + 1))
        # Field -> choices; in the JSON form of a block. One home for the priors.
        self.block_choices: dict[str, tuple[Any, ...]] = {
            "filters": _ladder(*config.filters),
            "expand": (1, 2, 3, 4, 6, 8),
            "repeats": tuple(range(config.repeats[0], config.repeats[1] + 1)),
            "spatial_type": SPATIAL_TYPES,
            "spatial_kernel": tuple(range(1, 9)),
            "spatial_stride": tuple(range(1, 9)),
            "temporal_type": TEMPORAL_TYPES,
            "temporal_kernel": tuple(range(1, 9)),
            "temporal_stride": tuple(range(1, 9)),
            "non_local": (0, 0, 0, 16, 32, 64, 128),  # off half the time
            "non_local_pool": (1, 2, 4),
            "context_gate": (0, 1),
            "squeeze": (0.0, 0.0, 0.0, 0.125, 0.25, 0.5),  # off half the time
            "skip": (0, 1),
        }

    def to_json(self) -> dict[str, Any]:
        """Everything that defines the space: a study records it and refuses another."""
        return {
            "inputs": {k: list(v) for k, v in self.input_choices.items()},
            "num_blocks": list(self.num_blocks),
            "blocks": {k: list(v) for k, v in self.block_choices.items()},
        }

    # Sampling -------------------------------------------------------------

    def _draw(self, rng: np.random.Generator, choices) -> Any:
        value = choices[int(rng.integers(len(choices)))]
        return value.item() if isinstance(value, np.generic) else value

    def sample_block(self, rng: np.random.Generator) -> dict[str, Any]:
        return {k: self._draw(rng, v) for k, v in self.block_choices.items()}

    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> arch_lib.Architecture:
        """A random architecture that validates and fits `MAX_*` (redrawn until it does)."""
        for _ in range(max_tries):
            data = {k: self._draw(rng, v) for k, v in self.input_choices.items()}
            data["blocks"] = [
                self.sample_block(rng) for _ in range(self._draw(rng, self.num_blocks))
            ]
            arch = arch_lib.architecture_from_json(data, "sampled")
            if fits(arch):
                return arch
        raise ValueError(
            f"No architecture in {max_tries} draws fits the size caps; widen the space."
        )

    def smallest(self) -> arch_lib.Architecture:
        """The space's network with the smallest tensors and fewest parameters.

        The lowest resolution, frame count, block count, filters, expansion and
        repeats; average pooling with the largest windows and strides in space
        and time; no squeeze-excitation, gating, skip or non-local block. No
        network of the space fits `fits` when this one does not.
        """
        c = self.block_choices
        block = {
            "filters": min(c["filters"]),
            "expand": min(c["expand"]),
            "repeats": min(c["repeats"]),
            "spatial_type": "avgpool",
            "spatial_kernel": max(c["spatial_kernel"]),
            "spatial_stride": max(c["spatial_stride"]),
            "temporal_type": "avgpool",
            "temporal_kernel": max(c["temporal_kernel"]),
            "temporal_stride": max(c["temporal_stride"]),
            "non_local": 0,
            "non_local_pool": _BLOCK_DEFAULTS["non_local_pool"],
            "context_gate": 0,
            "squeeze": 0.0,
            "skip": 0,
        }
        data = {k: min(v) for k, v in self.input_choices.items()}
        data["blocks"] = [dict(block) for _ in range(self.num_blocks[0])]
        return arch_lib.architecture_from_json(data, "smallest")

    def contains(self, arch: arch_lib.Architecture) -> bool:
        """Whether every searched value of `arch` is one of this space's choices."""
        data = _full_json(arch)
        if any(data[k] not in v for k, v in self.input_choices.items()):
            return False
        if len(data["blocks"]) not in self.num_blocks:
            return False
        return all(b[k] in v for b in data["blocks"] for k, v in self.block_choices.items())

    # Mutation ---------------------------------------------------------------

    def parts(self, arch: arch_lib.Architecture) -> list[tuple[str, ...]]:
        """Everything a mutation may change: input fields, the block count, one field of one block."""
        parts = [("input", k) for k, v in self.input_choices.items() if len(v) > 1]
        if len(self.num_blocks) > 1:
            parts.append(("num_blocks",))
        for i in range(len(arch.blocks)):
            parts += [("block", i, k) for k, v in self.block_choices.items() if len(set(v)) > 1]
        return parts

    def mutate(
        self, arch: arch_lib.Architecture, rng: np.random.Generator, max_tries: int = 1000
    ) -> tuple[arch_lib.Architecture, str]:
        """Changes exactly one part of `arch` (see `parts`).

        A child that does not fit, or that is the same network as its parent
        (`canonical_key`: e.g. a new stride for a kernel of 1), is redrawn.

        Returns:
          `(child, description)`, e.g. `(..., "block 2 filters 64->96")`.
        """
        data = _full_json(arch)
        parent_key = canonical_key(arch)
        parts = self.parts(arch)
        for _ in range(max_tries):
            part = parts[int(rng.integers(len(parts)))]
            child = json.loads(json.dumps(data))
            if part[0] == "input":
                field = part[1]
                new = self._draw(rng, [v for v in self.input_choices[field] if v != data[field]])
                child[field] = new
                what = f"{field} {data[field]}->{new}"
            elif part[0] == "num_blocks":
                n = len(data["blocks"])
                grow = n < self.num_blocks[-1] and (n <= self.num_blocks[0] or rng.random() < 0.5)
                if grow:
                    at = int(rng.integers(n + 1))
                    child["blocks"].insert(at, self.sample_block(rng))
                    what = f"insert block {at}"
                else:
                    at = int(rng.integers(n))
                    del child["blocks"][at]
                    what = f"remove block {at}"
            else:
                _, i, field = part
                old = data["blocks"][i][field]
                new = self._draw(rng, [v for v in self.block_choices[field] if v != old])
                child["blocks"][i][field] = new
                what = f"block {i} {field} {old}->{new}"
            try:
                candidate = arch_lib.architecture_from_json(child, "mutated")
            except ValueError:
                continue
            if fits(candidate) and canonical_key(candidate) != parent_key:
                return candidate, what
        raise ValueError(f"No mutation of {arch.name} in {max_tries} draws fits; widen the space.")

    def project(self, arch: arch_lib.Architecture) -> arch_lib.Architecture:
        """`arch` moved into this space: every value clipped to the nearest choice.

        Used for `--seed_architectures`: a released network at 224 px enters a
        search over 32-64 px at 64 px, with its blocks as they are where allowed.
        """

        def nearest(value, choices):
            if isinstance(value, str):
                return value if value in choices else choices[0]
            return min(choices, key=lambda c: (abs(c - value), c))

        data = _full_json(arch)
        out = {k: nearest(data[k], v) for k, v in self.input_choices.items()}
        blocks = data["blocks"][: self.num_blocks[-1]]
        while len(blocks) < self.num_blocks[0]:
            blocks.append(dict(blocks[-1]))
        out["blocks"] = [
            {k: nearest(b[k], v) for k, v in self.block_choices.items()} for b in blocks
        ]
        return arch_lib.architecture_from_json(out, arch.name)

    @staticmethod
    def changes(arch: arch_lib.Architecture, projected: arch_lib.Architecture) -> list[str]:
        """What `project` changed, e.g. `["block 1 squeeze 0.9068->0.5"]` (empty: nothing).

        No released TVN is itself in the space, even at full width: their
        values were drawn from continuous ranges that the space's choices
        discretise (TVN-1's squeeze ratios 0.91 and 0.73, TVN-2's 348 filters,
        TVN-3's expansion 5), and TVN-Mobile's hard-swish and inverted
        bottleneck are not searched. The search logs these changes rather than
        seed something else silently under the released name.
        """

        def text(value) -> str:
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        def diff(prefix: str, a: dict, b: dict) -> list[str]:
            return [f"{prefix}{k} {text(a[k])}->{text(b[k])}" for k in a if a[k] != b[k]]

        inputs = ("image_size", "num_frames", "frame_stride")
        out = diff("", *({k: getattr(x, k) for k in inputs} for x in (arch, projected)))
        for i, (a, b) in enumerate(zip(arch.blocks, projected.blocks)):
            out += diff(f"block {i} ", dataclasses.asdict(a), dataclasses.asdict(b))
        if len(arch.blocks) != len(projected.blocks):
            out.append(f"blocks {len(arch.blocks)}->{len(projected.blocks)}")
        return out


def canonical_json(arch: arch_lib.Architecture) -> str:
    """The network `arch` builds, as a string: equivalent JSON forms give the same string.

    A kernel of 1 runs no op, so its type and stride do not matter; a
    non-local block's pooling does not matter when it is off; the temporal op
    does not matter when the clip has one frame by then; squeeze ratios are
    rounded to 6 digits.
    """
    data = _full_json(arch)
    frames = arch.num_frames
    blocks = []
    for b in data["blocks"]:
        # A ReLU is left out, so a key depends on the network alone, not on whether
        # its JSON names the default activation (keys stored in studies stay valid).
        b = {k: b[k] for k in sorted(b) if not (k in _ACTIVATIONS and b[k] == "relu")}
        if b["spatial_kernel"] == 1:
            b["spatial_type"], b["spatial_stride"] = "-", 1
        if b["temporal_kernel"] == 1 or frames == 1:
            b["temporal_type"], b["temporal_kernel"], b["temporal_stride"] = "-", 1, 1
        else:
            frames = math.ceil(frames / b["temporal_stride"])
        if not b["non_local"]:
            b["non_local_pool"] = 0
        b["squeeze"] = round(float(b["squeeze"]), 6)
        blocks.append(b)
    if arch.num_frames == 1:
        data["frame_stride"] = 1
    data["blocks"] = blocks
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def canonical_key(arch: arch_lib.Architecture) -> str:
    """A short hash of `canonical_json`: the duplicate and latency-cache key."""
    return hashlib.sha1(canonical_json(arch).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class SizeEstimate:
    """Per-clip sizes of a network, from its shapes alone (no model built)."""

    max_activation: int
    max_attention: int
    params: int


def estimate(arch: arch_lib.Architecture) -> SizeEstimate:
    """Largest tensor, largest non-local attention and a parameter estimate, per clip."""
    frames, size, channels = arch.num_frames, arch.image_size, 3
    biggest = frames * size * size * channels
    attention, params = 0, 0
    for spec in arch.blocks:
        for r in range(spec.repeats):
            wide = spec.expanded_filters
            k, s = spec.spatial_kernel, spec.spatial_stride if r == 0 else 1
            if k > 1 and spec.spatial_type in ("std", "depth"):
                params += channels * spec.filters
                params += k * k * spec.filters * (spec.filters if spec.spatial_type == "std" else 1)
                channels = spec.filters
            if k > 1:
                size = math.ceil(size / s)
            temporal = (r == 0 or r % 2 == 0) and frames > 1 and spec.temporal_kernel > 1
            if temporal:
                if spec.temporal_type == "1d":
                    params += spec.temporal_kernel * channels * spec.filters
                    channels = spec.filters
                frames = math.ceil(frames / (spec.temporal_stride if r == 0 else 1))
            params += channels * wide + 2 * wide * wide * (spec.squeeze + spec.context_gate)
            channels = wide
            biggest = max(biggest, frames * size * size * channels)
            if spec.non_local:
                positions = frames * size * size
                pooled = frames * math.ceil(size / spec.non_local_pool) ** 2
                attention = max(attention, positions * pooled)
                params += 4 * channels * spec.non_local
    return SizeEstimate(biggest, attention, int(params))


def fits(arch: arch_lib.Architecture) -> bool:
    """Whether `arch` is small enough to build, time and train (`MAX_*`)."""
    size = estimate(arch)
    return (
        size.max_activation <= MAX_ACTIVATION
        and size.max_attention <= MAX_ATTENTION
        and size.params <= MAX_PARAMS_ESTIMATE
    )


def differences(a: arch_lib.Architecture, b: arch_lib.Architecture) -> list[str]:
    """The parts in which two architectures' JSON forms differ (for tests and reports)."""
    x, y = _full_json(a), _full_json(b)
    out = [k for k in ("num_frames", "frame_stride", "image_size") if x[k] != y[k]]
    if len(x["blocks"]) != len(y["blocks"]):
        out.append("num_blocks")
        return out
    for i, (p, q) in enumerate(zip(x["blocks"], y["blocks"])):
        out += [f"block {i} {k}" for k in sorted(set(p) | set(q)) if p.get(k) != q.get(k)]
    return out
