"""What a search worker is told (`SearchConfig`), and the checks made before anything runs.

    config = SearchConfig(model_dir="runs/search", data=DataConfig(...), num_trials=30)
    check_config(config)

The brief training each candidate gets is a `TrainConfig` (`proxy`), the
trainer's own recipe with the search's values (`PROXY`): the same for every
candidate, so candidates compare. Its `PROXY_FIELDS` are the search's flags
and part of the study's settings.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tvn_tf.data import dataset as data_lib
from tvn_tf.models import memory
from tvn_tf.search import algorithms
from tvn_tf.search import space as space_lib
from tvn_tf.training.config import TrainConfig

LATENCY_VARIANTS = ("float32", "int8")

# The brief training of every candidate: 100 steps of 16 clips, written rarely, shown never.
PROXY = TrainConfig(
    model_dir="",  # Each candidate's folder.
    epochs=1,
    train_steps=100,
    batch_size=16,
    learning_rate=0.4,
    warmup_epochs=1.0,
    eval_clips=2,
    seed=1,
    checkpoint_every=50,
    keep_checkpoints=1,
    num_sample_clips=0,
    progress_bar=False,
    eval_every=0,
)
# The proxy's fields the search's flags set (same names as `tvn_tf.train`'s); a study records them.
PROXY_FIELDS = (
    "train_steps",
    "batch_size",
    "learning_rate",
    "warmup_epochs",
    "weight_decay",
    "label_smoothing",
    "dropout_rate",
    "optimizer",
    "eval_clips",
    "seed",
)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything a search worker needs (the flags of `python -m tvn_tf.search`).

    `search_seed` seeds the search's own draws (which networks are proposed);
    `proxy.seed` is the candidates' training seed, as `tvn_tf.train`'s `--seed`.
    """

    model_dir: str
    data: data_lib.DataConfig
    storage: str = ""  # "" : sqlite:///MODEL_DIR/search.db
    study_name: str = "search"
    algorithm: str = "tournament"
    num_trials: int = 1000
    population: int = 200
    tournament_size: int = 50
    search_seed: int = 0
    seed_architectures: tuple[str, ...] = ()
    space: space_lib.SpaceConfig = space_lib.SpaceConfig()
    max_params: int = 0  # 0: no limit
    max_latency_ms: float = 0.0  # 0: no limit
    latency_variant: str = "float32"
    threads: int = 2
    latency_runs: int = 10
    proxy: TrainConfig = PROXY
    final_epochs: int = 0  # 0: no final retraining
    final_learning_rate: float = 0.0  # 0: the proxy's
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 3
    compare_study: str = ""
    progress: bool = True


def _checks(config: SearchConfig) -> list[tuple[str, bool, str]]:
    """(flag, whether its value is fine, what it expects) for every bounded flag."""
    return [
        ("algorithm", config.algorithm in algorithms.ALGORITHMS, _one_of(algorithms.ALGORITHMS)),
        ("num_trials", config.num_trials >= 1, "an integer >= 1"),
        ("population", config.population >= 1, "an integer >= 1"),
        (
            "population",
            config.algorithm != "tournament" or config.population < config.num_trials,
            f"fewer than --num_trials={config.num_trials} with --algorithm=tournament (the "
            "first --population candidates are random, the tournament only mutates after "
            "them); lower --population, raise --num_trials or use --algorithm=random",
        ),
        (
            "tournament_size",
            1 <= config.tournament_size <= config.population,
            "an integer in [1, --population]",
        ),
        ("max_params", config.max_params >= 0, "an integer >= 0 (0: no limit)"),
        ("max_latency_ms", config.max_latency_ms >= 0, "a number >= 0 (0: no limit)"),
        ("latency_variant", config.latency_variant in LATENCY_VARIANTS, _one_of(LATENCY_VARIANTS)),
        ("threads", config.threads >= 1, "an integer >= 1"),
        ("train_steps", config.proxy.train_steps >= 1, "an integer >= 1"),
        (
            "num_validation_groups",
            config.data.num_validation_groups >= 1,
            "an integer >= 1 (the search scores candidates on held-out training groups)",
        ),
        ("heartbeat_interval", config.heartbeat_interval >= 1, "an integer >= 1"),
        (
            "grace_period",
            config.grace_period > config.heartbeat_interval,
            "more seconds than --heartbeat_interval",
        ),
    ]


def _one_of(values) -> str:
    return "one of " + ", ".join(values)


def check_config(config: SearchConfig) -> None:
    """Raises ValueError naming the flag at fault."""
    for flag, ok, expected in _checks(config):
        if not ok:
            value = getattr(config, flag, None)
            if value is None:
                value = getattr(config.proxy, flag, None)
            if value is None:
                value = getattr(config.data, flag, None)
            raise ValueError(f"--{flag}={value!r}; expected {expected}.")
    space_lib.check_space_config(config.space)


def check_model_dir(path: str) -> None:
    """Refuses a --model_dir that is a file or cannot be written, without creating it."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"--model_dir={path}: {probe} is a file, not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--model_dir={path}: {probe} is not writable.")


def _space_flags(config: space_lib.SpaceConfig) -> str:
    return " ".join(f"--{k}={v[0]},{v[1]}" for k, v in dataclasses.asdict(config).items())


def check_space_fits(space: space_lib.SearchSpace, config: SearchConfig, num_classes: int) -> None:
    """Refuses a search space none of whose networks can be searched, before a study is stored.

    Its smallest network (`SearchSpace.smallest`) must fit the size caps
    (`space.fits`) and this machine's memory for the proxy training
    (`memory.check_fits`), and random draws must find fitting networks.

    Raises:
      ValueError: one line naming the space's flags and the cap not met.
    """
    smallest = space.smallest()
    size = space_lib.estimate(smallest)
    flags_text = _space_flags(space.config)
    caps = [
        (size.max_activation, space_lib.MAX_ACTIVATION, "values in its largest tensor"),
        (size.max_attention, space_lib.MAX_ATTENTION, "values in its attention"),
        (size.params, space_lib.MAX_PARAMS_ESTIMATE, "parameters"),
    ]
    for value, cap, what in caps:
        if value > cap:
            raise ValueError(
                f"the search space {flags_text} holds no network small enough to search: even "
                f"its smallest ({smallest.num_frames} frames at {smallest.image_size}px, "
                f"{len(smallest.blocks)} blocks) has {value:,} {what} per clip (at most "
                f"{cap:,}); lower --resolution, --frames or --filters."
            )
    try:
        memory.check_fits(smallest, num_classes, config.proxy.batch_size, training=True)
    except memory.TooLargeError as e:
        raise ValueError(
            f"the search space {flags_text} holds no network this machine can train with "
            f"--batch_size={config.proxy.batch_size}: even its smallest: {e}"
        ) from None
    try:
        space.sample(np.random.default_rng(config.search_seed))
    except ValueError:
        raise ValueError(
            f"the search space {flags_text}: no network of 1000 random draws fits the size "
            "caps (only its smallest networks do); lower --resolution, --frames or --filters."
        ) from None
