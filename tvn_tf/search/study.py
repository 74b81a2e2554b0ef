"""Opening a search's Optuna study: created once, resumed by every rerun and worker.

    study = open_study(config, settings(config, space, dataset))

A study records its settings (`settings`: algorithm, space, limits, proxy
training, data) when it is created; a worker whose settings differ is refused,
naming the differences. A new study is never started over the records of one
the storage does not hold (an emptied or lost search.db, another
--study_name): those records are kept and the worker refused.
"""

from __future__ import annotations

import json
import os
from typing import Any

import optuna

from tvn_tf.data import dataset as data_lib
from tvn_tf.search import config as config_lib
from tvn_tf.search import records
from tvn_tf.search import space as space_lib
from tvn_tf.search import storage as storage_lib


def settings(
    config: config_lib.SearchConfig, space: space_lib.SearchSpace, dataset: data_lib.Dataset
) -> dict[str, Any]:
    """What a study is: a rerun or another worker with other settings is refused."""
    return {
        "algorithm": config.algorithm,
        "population": config.population,
        "tournament_size": config.tournament_size,
        "seed": config.search_seed,
        "seed_architectures": list(config.seed_architectures),
        "space": space.to_json(),
        "max_params": config.max_params,
        "max_latency_ms": config.max_latency_ms,
        "latency_variant": config.latency_variant,
        "threads": config.threads,
        "proxy": {name: getattr(config.proxy, name) for name in config_lib.PROXY_FIELDS},
        "classes": list(dataset.class_names),
        "train_groups": list(dataset.split.train),
        "validation_groups": list(dataset.split.validation),
    }


def differences(old: dict, new: dict) -> list[str]:
    """One `key: old (study) vs new (now)` line per setting that differs."""
    out = []
    for key in sorted(set(old) | set(new)):
        if json.dumps(old.get(key), sort_keys=True) != json.dumps(new.get(key), sort_keys=True):
            a, b = json.dumps(old.get(key)), json.dumps(new.get(key))
            out.append(f"{key}: {a[:60]} (study) vs {b[:60]} (now)")
    return out


def records_in(model_dir: str) -> list[str]:
    """The records of a study already in the model dir (`records.RECORDS`)."""
    return [n for n in records.RECORDS if os.path.exists(os.path.join(model_dir, n))]


def _refuse_new_study(config: config_lib.SearchConfig, where: str) -> None:
    """A new study must not write over the records of one it cannot read."""
    found = records_in(config.model_dir)
    if found:
        raise ValueError(
            f"{config.model_dir} holds {', '.join(found)} of a search, but {where} "
            f"has no study '{config.study_name}' to resume; restore that study "
            "(or pass the --storage and --study_name it used), or use another --model_dir."
        )


def _load(config: config_lib.SearchConfig, storage, study_settings: dict) -> optuna.Study:
    """The stored study, refused when its settings are not `study_settings`."""
    name = config.study_name
    study = optuna.load_study(study_name=name, storage=storage)
    old = study.user_attrs.get(records.SETTINGS_ATTR)
    if old is not None and old != json.loads(json.dumps(study_settings)):
        where = config.storage or config.model_dir
        raise ValueError(
            f"{where} holds study '{name}' with other settings ("
            + "; ".join(differences(old, study_settings)[:3])
            + "); use its flags, another --model_dir or another --study_name."
        )
    return study


def open_study(config: config_lib.SearchConfig, study_settings: dict) -> optuna.Study:
    """The study of `config` (created if the storage has none and no records say otherwise).

    Raises:
      ValueError: one line naming the storage, the model dir or the settings at fault.
    """
    url = storage_lib.storage_url(config.storage, config.model_dir)
    path = storage_lib.sqlite_path(url)
    if path is not None:  # Refused before the file or its folder is created.
        if not os.path.exists(path):
            _refuse_new_study(config, path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    storage = storage_lib.open_storage(
        url,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.grace_period,
        max_retry=config.max_retry,
    )
    os.makedirs(config.model_dir, exist_ok=True)
    name = config.study_name
    with storage_lib.quiet_optuna():
        if name in storage_lib.study_names(storage):
            study = _load(config, storage, study_settings)
        else:
            _refuse_new_study(config, path or storage_lib.redact(url))
            study = optuna.create_study(
                storage=storage, study_name=name, direction="maximize", load_if_exists=True
            )
        if study.user_attrs.get(records.SETTINGS_ATTR) is None:
            study.set_user_attr(records.SETTINGS_ATTR, study_settings)
    return study
