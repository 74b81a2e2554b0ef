"""tf.distribute strategies by name, and who writes files under each."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tvn_tf import model_dir as model_dir_lib

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (mirrored training on a CPU).

    Must run before TensorFlow initialises its devices.
    """
    if num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices
        )


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy`.

    `default`: one device. `mirrored`: every GPU of this machine, or every
    logical CPU device when there is no GPU. `multi_worker`: every worker
    named in `TF_CONFIG`, synchronously. `tpu`: the TPU at `tpu` (a name or
    grpc address; empty for the local one).

    Raises:
      ValueError: on an unknown name, or `multi_worker` without `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = (
            None
            if tf.config.list_logical_devices("GPU")
            else [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable "
                "(the cluster and this worker's task); see docs/training.md."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={name!r}; expected one of {', '.join(STRATEGIES)}.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (the chief, or worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type in (None, "worker") and task_id == 0 and not has_chief


def write_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this process saves checkpoints: `model_dir` for the chief, else a scratch folder.

    Every multi-worker process must take part in saving; the others' copies (identical
    to the chief's) stay in `model_dir.worker_dir` for checking.
    """
    if is_chief(strategy):
        return model_dir
    return model_dir_lib.worker_dir(model_dir, strategy.cluster_resolver.task_id)


def from_chief(strategy: tf.distribute.Strategy, flag: bool, chief: bool) -> bool:
    """The chief's `flag`, on every worker (one all-reduce under multi-worker training).

    For decisions only the chief can take (it alone evaluates) that every worker
    must follow, such as saving a checkpoint, in which all of them take part.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return flag
    # Each of this worker's replicas adds its share; only the chief's count.
    share = float(flag and chief) / len(strategy.extended.worker_devices)
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant(share, tf.float64)),
        axis=None,
    )
    return float(total) > 0.5
