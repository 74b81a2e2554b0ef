"""How much memory a TVN needs, from its architecture alone (no model built).

Building a network far too wide (10 blocks of 8192 filters, `--width_multiplier=32`)
would allocate weights until the machine runs out of memory, so every binary that
builds a model from an architecture asks first:

    memory.check_fits(arch, num_classes=50)                       # model_info, export
    memory.check_fits(arch, 50, batch_size=16, training=True)     # train, search candidates

`estimate` mirrors `tvn.TinyVideoNetwork` and `blocks.TinyBlock` op by op: the
parameter count is exact (Keras's `count_params`: weights, biases and the four
batch-norm vectors per channel), the activation sizes are those of the tensors
one clip produces in a forward pass.
"""

from __future__ import annotations

import dataclasses
import math
import os

from tvn_tf.models import architecture as arch_lib

BYTES_PER_VALUE = 4  # float32 weights and activations.
# Training keeps, per weight, the weight, its gradient and up to two optimizer slots.
TRAINING_COPIES_PER_WEIGHT = 4


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """A network's sizes, in values (not bytes).

    Attributes:
      params: Every weight of the Keras model (`model.count_params()`).
      activations: Values of all tensors one clip produces in a forward pass
        (what backpropagation keeps).
      largest_activation: Values of the largest of those tensors.
      attention: Values of the largest non-local attention matrix of one clip.
    """

    params: int
    activations: int
    largest_activation: int
    attention: int

    def bytes_needed(self, batch_size: int = 1, training: bool = False) -> int:
        """Bytes to hold the model and run `batch_size` clips through it.

        Inference holds the weights and, at its peak, an op's input and output
        (and a non-local block's attention with its softmax); training holds every
        weight `TRAINING_COPIES_PER_WEIGHT` times and every activation.
        """
        if training:
            values = TRAINING_COPIES_PER_WEIGHT * self.params + batch_size * (
                self.activations + 2 * self.attention
            )
        else:
            values = self.params + batch_size * 2 * (self.largest_activation + self.attention)
        return BYTES_PER_VALUE * values


class _Tally:
    """Running totals of parameters and activations while walking the network."""

    def __init__(self):
        self.params = 0
        self.activations = 0
        self.largest = 0
        self.attention = 0

    def tensor(self, values: int, count: int = 1) -> None:
        self.activations += values * count
        self.largest = max(self.largest, values)

    def conv_bn(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        out_values: int,
        act: bool,
        depthwise: bool = False,
    ) -> None:
        """`layers.ConvBN`: no bias, batch norm (4 vectors), optional activation.

        Backpropagation keeps two tensors of its output's size: the convolution's
        output (batch norm's gradient needs it) and the batch norm's or the
        activation's (the next op's input; ReLU's gradient needs its output).
        """
        del act  # The activation's output replaces the batch norm's: still two tensors.
        weights = kernel * out_channels if depthwise else kernel * in_channels * out_channels
        self.params += weights + 4 * out_channels
        self.tensor(out_values, 2)


def estimate(arch: arch_lib.Architecture, num_classes: int) -> MemoryEstimate:
    """The sizes of `tvn.TinyVideoNetwork(arch, num_classes)` (mean head), computed arithmetically."""
    tally = _Tally()
    frames, size, channels = arch.num_frames, arch.image_size, 3
    tally.tensor(frames * size * size * channels)  # The input clip.
    for spec in arch.blocks:
        # The first application uses the block's strides; repeats use 1 and
        # alternate the temporal op, off first.
        for r in range(spec.repeats):
            frames, size, channels = _block(
                tally, spec, frames, size, channels, 0 if r == 0 else 1, r % 2 == 0
            )
    tally.params += channels * num_classes + num_classes  # The classifier (with bias).
    tally.tensor(channels + num_classes)
    return MemoryEstimate(tally.params, tally.activations, tally.largest, tally.attention)


def _block(
    tally: _Tally,
    spec: arch_lib.BlockSpec,
    frames: int,
    size: int,
    channels: int,
    strides: int,
    use_temporal: bool,
) -> tuple[int, int, int]:
    """One `blocks.TinyBlock` application; returns its output (frames, size, channels)."""
    in_frames, in_channels = frames, channels
    expanded = spec.expanded_filters
    width = expanded if spec.inverted_bottleneck else spec.filters
    values = lambda: frames * size * size * channels  # noqa: E731
    if spec.inverted_bottleneck and spec.expand > 0:
        tally.conv_bn(channels, expanded, 1, frames * size * size * expanded, act=True)
        channels = expanded
    size, channels = _spatial(
        tally, spec, frames, size, channels, spec.spatial_stride if strides == 0 else strides
    )
    # Temporal op, when this application runs it and the clip has frames to mix.
    if use_temporal and frames > 1 and spec.temporal_kernel > 1:
        t_stride = spec.temporal_stride if strides == 0 else strides
        frames = math.ceil(frames / t_stride)
        if spec.temporal_type == "1d":
            tally.conv_bn(
                channels, width, spec.temporal_kernel, values() // channels * width, act=True
            )
            channels = width
        else:
            tally.tensor(values())
    if not spec.inverted_bottleneck and spec.expand > 0:
        tally.conv_bn(channels, expanded, 1, values() // channels * expanded, act=False)
        channels = expanded
    if spec.squeeze > 0:  # Squeeze-excitation on E channels (with biases).
        hidden = max(int(expanded * spec.squeeze), 8)
        tally.params += expanded * hidden + hidden + hidden * expanded + expanded
        tally.tensor(values())
    if spec.context_gate:
        tally.params += expanded * expanded + expanded
        tally.tensor(values())
    if spec.inverted_bottleneck and spec.expand > 0:
        tally.conv_bn(channels, spec.filters, 1, values() // channels * spec.filters, act=False)
        channels = spec.filters
    if spec.skip and frames == in_frames:  # Projection of the block input, then the sum.
        tally.conv_bn(in_channels, channels, 1, values(), act=False)
        tally.tensor(values())
    tally.tensor(values())  # The block's activation.
    if spec.non_local:
        _non_local(tally, spec, frames, size, channels)
    return frames, size, channels


def _spatial(
    tally: _Tally,
    spec: arch_lib.BlockSpec,
    frames: int,
    size: int,
    channels: int,
    stride: int,
) -> tuple[int, int]:
    """The block's spatial op (`layers.SpatialOp`; a kernel of 1: none); returns (size, channels)."""
    k = spec.spatial_kernel
    if k == 1:
        return size, channels
    width = spec.expanded_filters if spec.inverted_bottleneck else spec.filters
    if spec.spatial_type in ("std", "depth"):
        tally.conv_bn(channels, width, 1, frames * size * size * width, act=True)
        channels = width
    size = math.ceil(size / stride)
    values = frames * size * size * channels
    if spec.spatial_type in ("std", "1std"):
        tally.conv_bn(channels, width, k * k, values // channels * width, act=True)
        channels = width
    elif spec.spatial_type == "depth":
        tally.conv_bn(channels, channels, k * k, values, act=True, depthwise=True)
    else:
        tally.tensor(values)
    return size, channels


def _non_local(
    tally: _Tally, spec: arch_lib.BlockSpec, frames: int, size: int, channels: int
) -> None:
    """The non-local block after the block's activation (`gates.NonLocal`)."""
    bottleneck = spec.non_local
    positions = frames * size * size
    pooled = frames * math.ceil(size / spec.non_local_pool) ** 2
    tally.params += 3 * (channels * bottleneck + bottleneck)
    tally.conv_bn(bottleneck, channels, 1, positions * channels, act=False)
    tally.tensor(positions * bottleneck, 4)  # theta, phi, g and the attended values.
    tally.tensor(pooled * bottleneck, 2)
    tally.attention = max(tally.attention, positions * pooled)
    tally.tensor(positions * pooled, 2)  # The attention matrix and its softmax.
    tally.tensor(positions * channels)  # The sum.


def available_memory() -> tuple[int, str]:
    """Bytes this process may still allocate, and where the figure comes from.

    The smallest of: the kernel's estimate of available memory (`MemAvailable`
    in /proc/meminfo, else free pages), and the room left under this process's
    cgroup memory limit, if it has one.
    """
    found: list[tuple[int, str]] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "available memory"))
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES") or os.sysconf("SC_PHYS_PAGES")
            found.append((pages * os.sysconf("SC_PAGE_SIZE"), "free memory"))
        except (OSError, ValueError):
            found.append((0, "unknown"))
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            found.append((max(0, int(limit) - usage), "room under the cgroup memory limit"))
        break
    return min(found)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def out_of_memory(error: BaseException) -> BaseException | None:
    """The out-of-memory error behind `error`, or None when it is something else.

    Matches Python's MemoryError and TensorFlow's ResourceExhaustedError for an
    allocation ("OOM when allocating", not a full disk), also where it is the
    cause or context of another error: Keras re-raises an error met while it
    traces a layer's `call` as `type(error)(message)`
    (`keras.src.ops.operation.Operation.compute_output_spec`), which TensorFlow's
    three-argument errors cannot take, so a `TypeError: ResourceExhaustedError.
    __init__() missing 2 required positional arguments` stands for an OOM.
    Matched by name: this module stays TensorFlow-free.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MemoryError):
            return error
        if type(error).__name__ == "ResourceExhaustedError" and "No space left" not in str(error):
            return error
        error = error.__cause__ or error.__context__
    return None


def describe_out_of_memory(error: BaseException) -> str:
    """One line from an out-of-memory error (TensorFlow's are long, with node names)."""
    text = " ".join(str(error).split())
    at = text.find("OOM when allocating")
    if at >= 0:
        text = text[at:]
        shape = text.find(" and type")
        text = text[:shape] if shape > 0 else text
    return text[:200] or type(error).__name__


class TooLargeError(ValueError):
    """A model would not fit in this machine's memory; str() is the one line to show.

    Attributes:
      needed: Bytes the model would need (`MemoryEstimate.bytes_needed`).
      available: Bytes available.
    """

    def __init__(self, message: str, needed: int, available: int):
        super().__init__(message)
        self.needed = needed
        self.available = available

    def short(self) -> str:
        """The figures alone, e.g. "needs about 41.3 GB of memory, 20.1 GB available"."""
        return f"needs about {_gb(self.needed)} of memory, {_gb(self.available)} available"


def check_fits(
    arch: arch_lib.Architecture,
    num_classes: int,
    batch_size: int = 1,
    training: bool = False,
    available: int | None = None,
) -> MemoryEstimate:
    """Refuses, before anything is built, a model that would not fit in memory.

    Args:
      arch: The architecture to build.
      num_classes: Width of its classifier.
      batch_size: Clips per step (1: building, timing or predicting one clip).
      training: Whether gradients, optimizer slots and every activation are held.
      available: Bytes to compare against; None: `available_memory()`.

    Returns:
      The estimate, when the model fits.

    Raises:
      TooLargeError (a ValueError): naming the architecture, its parameter count,
        the memory its weights and one batch's activations need, and the memory
        available.
    """
    size = estimate(arch, num_classes)
    needed = size.bytes_needed(batch_size, training)
    source = "given"
    if available is None:
        available, source = available_memory()
    if needed <= available:
        return size
    weights = BYTES_PER_VALUE * size.params * (TRAINING_COPIES_PER_WEIGHT if training else 1)
    clips = "one clip" if batch_size == 1 else f"a batch of {batch_size} clips"
    raise TooLargeError(
        f"{arch.name} ({arch.num_frames} frames at {arch.image_size}x{arch.image_size}, "
        f"{len(arch.blocks)} blocks) would need about {_gb(needed)} of memory to "
        f"{'train' if training else 'build and run'}: {size.params:,} parameters "
        f"({_gb(weights)}) and the activations of {clips} ({_gb(needed - weights)}), "
        f"but this machine has {_gb(available)} ({source}); use a smaller architecture "
        "(fewer filters, blocks or frames, a lower resolution).",
        needed,
        available,
    )
