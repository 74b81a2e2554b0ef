"""Preparation: a UCF50-style video tree to sharded TFRecords (`tools/prepare_ucf50.py`).

Output folder:
  g01-00000-of-00003.tfrecord ...  shards of `SequenceExample`s, one group each
  classes.json                     the sorted class list; index = label
  manifest.jsonl                   one JSON object per file found (see `records.manifest_entry`)
  prepare_config.json              settings and input listing, checked on resume
  .manifest_parts/                 per-shard manifest lines (for resuming)

Resumable and idempotent: a shard is written under a temporary name unique to
its process (`tvn_tf.atomic`) and renamed when complete; a rerun keeps finished
shards, writes the rest and removes the temporary files of dead processes. A
killed run's pool workers exit within a second, so they do not race the rerun.
Nothing is ever written under
the input folder (compared as real paths, so links do not hide it).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import threading
import time

import tensorflow as tf
from absl import logging
from tqdm import tqdm

from tvn_tf import atomic
from tvn_tf.data import layout, records, video

MANIFEST = "manifest.jsonl"
CLASSES = "classes.json"
CONFIG = "prepare_config.json"
PARTS = ".manifest_parts"
DEFAULT_SHORT_SIDE = 240
DEFAULT_VIDEOS_PER_SHARD = 32


def prepare_dataset(
    input_dir: str,
    output_dir: str,
    *,
    short_side: int = DEFAULT_SHORT_SIDE,
    workers: int = 0,
    videos_per_shard: int = DEFAULT_VIDEOS_PER_SHARD,
    jpeg_quality: int = records.DEFAULT_JPEG_QUALITY,
    min_frames: int = video.DEFAULT_MIN_FRAMES,
    classes: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Writes the TFRecords, `classes.json` and `manifest.jsonl` of a video tree.

    Args:
      input_dir: Root of the tree (`input_dir/<Class>/v_<Class>_gNN_cMM.avi`).
      output_dir: Where to write; created if missing; must not be inside
        `input_dir`.
      short_side: Resize frames so their short side has this length (0 keeps
        the stored size; 240 keeps UCF50's 320x240 as is).
      workers: Worker processes; 0 uses every core.
      videos_per_shard: Videos per shard file (shards never mix groups).
      jpeg_quality: JPEG quality of the stored frames, 1..100.
      min_frames: Skip videos with fewer readable frames.
      classes: The class list; None takes the class folders.
      progress: Show a progress bar.

    Returns:
      A summary: {"found", "ok", "skipped", "shards", "classes"}.

    Raises:
      ValueError: a bad argument, or `output_dir` prepared from other
        settings or another input listing (the message says which).
      tvn_tf.atomic.NoSpaceError: the output's file system is full; finished
        shards are kept, half-written ones removed.
    """
    input_dir, output_dir = os.path.abspath(input_dir), os.path.abspath(output_dir)
    _check_args(input_dir, output_dir, short_side, workers, videos_per_shard, jpeg_quality)
    scan = _scan(input_dir, classes)
    plan = _plan_shards(scan.videos, videos_per_shard)
    encoding = {"short_side": short_side, "jpeg_quality": jpeg_quality, "min_frames": min_frames}
    try:
        _start_output(output_dir, scan, {**encoding, "videos_per_shard": videos_per_shard})
        tasks = _tasks_to_do(input_dir, output_dir, plan, encoding)
        for rejected in scan.rejected:
            logging.warning("Skipping %s: %s", rejected.path, rejected.problem)
        _run_tasks(
            tasks,
            workers or os.cpu_count() or 1,
            progress,
            total_videos=sum(len(t["entries"]) for t in tasks),
        )
        return _write_manifest(output_dir, plan, scan)
    except Exception as e:
        if not atomic.is_no_space(e):
            raise
        raise _no_space(output_dir, plan) from None


def _tasks_to_do(input_dir: str, output_dir: str, plan, encoding: dict) -> list[dict]:
    """One task per shard not yet written (a rerun resumes); says how many are done."""
    todo = [(name, entries) for name, entries in plan if not _shard_done(output_dir, name)]
    if len(todo) < len(plan):
        print(
            f"Resuming: {len(plan) - len(todo)} of {len(plan)} shards already written.",
            flush=True,
        )
    return [
        dict(output_dir=output_dir, input_dir=input_dir, name=name, entries=entries, **encoding)
        for name, entries in todo
    ]


def _no_space(output_dir: str, plan) -> atomic.NoSpaceError:
    """Removes half-written shards (finished ones stay: a rerun resumes from them)."""
    for folder in (output_dir, os.path.join(output_dir, PARTS)):
        atomic.remove_own_temporaries(folder)
        atomic.remove_stale_temporaries(folder)
    return atomic.NoSpaceError(output_dir, _bytes_still_needed(output_dir, plan))


def _bytes_still_needed(output_dir: str, plan) -> int | None:
    """The finished shards' bytes per video times the videos not yet written; None before any."""
    done = [(name, entries) for name, entries in plan if _shard_done(output_dir, name)]
    if not done:
        return None
    written = sum(os.path.getsize(os.path.join(output_dir, name)) for name, _ in done)
    per_video = written / sum(len(entries) for _, entries in done)
    missing = sum(len(entries) for name, entries in plan) - sum(len(e) for _, e in done)
    return int(per_video * missing)


def _scan(input_dir: str, classes: list[str] | None) -> layout.ScanResult:
    """The tree's videos by name; prints what was found and any notes on the layout."""
    scan = layout.scan_videos(input_dir, classes)
    for note in scan.notes:
        print(f"Note: {note}.", file=sys.stderr, flush=True)
    print(
        f"Found {len(scan.files)} files in {input_dir}: {len(scan.videos)} videos "
        f"by name in {len(scan.classes)} classes.",
        flush=True,
    )
    return scan


def _start_output(output_dir: str, scan: layout.ScanResult, settings: dict) -> None:
    """Creates `output_dir`, removes killed runs' leftovers, checks or writes its settings.

    Raises:
      ValueError: `output_dir` was prepared from other settings or another listing.
    """
    config = {
        **settings,
        "classes": list(scan.classes),
        "input_listing_sha256": hashlib.sha256(
            "\n".join(f.path for f in scan.files).encode()
        ).hexdigest(),
    }
    os.makedirs(os.path.join(output_dir, PARTS), exist_ok=True)
    for folder in (output_dir, os.path.join(output_dir, PARTS)):
        atomic.remove_stale_temporaries(folder)
    _check_or_write_config(output_dir, config)
    _write_atomically(os.path.join(output_dir, CLASSES), json.dumps(list(scan.classes), indent=1))


def _write_manifest(output_dir: str, plan, scan: layout.ScanResult) -> dict:
    """Joins the shards' parts and the rejected files into `manifest.jsonl`; returns the summary."""
    lines = []
    for name, _ in plan:
        with open(os.path.join(output_dir, PARTS, name + ".jsonl")) as f:
            lines.extend(json.loads(line) for line in f)
    lines.extend(records.manifest_entry(f, "skipped", f.problem, 0) for f in scan.rejected)
    lines.sort(key=lambda entry: entry["path"])
    _write_atomically(
        os.path.join(output_dir, MANIFEST), "".join(json.dumps(entry) + "\n" for entry in lines)
    )
    ok = sum(entry["status"] == "ok" for entry in lines)
    print(
        f"Wrote {ok} videos to {len(plan)} shards in {output_dir}; "
        f"skipped {len(lines) - ok} files (reasons in {MANIFEST}).",
        flush=True,
    )
    return {
        "found": len(lines),
        "ok": ok,
        "skipped": len(lines) - ok,
        "shards": len(plan),
        "classes": len(scan.classes),
    }


def _check_args(input_dir, output_dir, short_side, workers, videos_per_shard, jpeg_quality):
    if not os.path.isdir(input_dir):
        raise ValueError(f"--input_dir={input_dir!r} is not a directory.")
    real_input = os.path.realpath(input_dir)
    if os.path.commonpath([real_input, os.path.realpath(output_dir)]) == real_input:
        raise ValueError(
            f"--output_dir={output_dir!r} is inside --input_dir={input_dir!r}; "
            "nothing is ever written under the input folder."
        )
    if short_side < 0:
        raise ValueError(f"--short_side must be >= 0 (0 keeps the size), got {short_side}.")
    if workers < 0:
        raise ValueError(f"--workers must be >= 0 (0 uses every core), got {workers}.")
    if videos_per_shard < 1:
        raise ValueError(f"--videos_per_shard must be >= 1, got {videos_per_shard}.")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"--jpeg_quality must be in [1, 100], got {jpeg_quality}.")


def _plan_shards(videos, videos_per_shard):
    """[(shard name, videos)], one group per shard, deterministic."""
    by_group = {}
    for v in sorted(videos, key=lambda v: (v.group, v.path)):
        by_group.setdefault(v.group, []).append(v)
    plan = []
    for group, members in sorted(by_group.items()):
        count = -(-len(members) // videos_per_shard)
        for i in range(count):
            plan.append(
                (
                    records.shard_name(group, i, count),
                    members[i * videos_per_shard : (i + 1) * videos_per_shard],
                )
            )
    return plan


def _shard_done(output_dir, name):
    return os.path.exists(os.path.join(output_dir, name)) and os.path.exists(
        os.path.join(output_dir, PARTS, name + ".jsonl")
    )


def _init_worker(parent: int):
    """Sets one TensorFlow thread per worker and makes the worker exit with its parent.

    The processes already use every core. A killed run's workers would otherwise go on with the tasks already queued
    and then wait for ever on the queue, writing the shards a rerun writes too.
    """
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _write_shard_task(task):
    """Writes one shard, then its manifest part (in a worker, or in-process)."""
    entries = records.write_shard(
        os.path.join(task["output_dir"], task["name"]),
        task["entries"],
        task["input_dir"],
        short_side=task["short_side"],
        jpeg_quality=task["jpeg_quality"],
        min_frames=task["min_frames"],
    )
    # A shard counts as done once its manifest part exists too (`_shard_done`).
    _write_atomically(
        os.path.join(task["output_dir"], PARTS, task["name"] + ".jsonl"),
        "".join(json.dumps(e) + "\n" for e in entries),
    )
    return task["name"], entries


def _run_tasks(tasks, workers, progress, total_videos):
    bar = tqdm(total=total_videos, unit="video", disable=not progress or not tasks, file=sys.stderr)
    workers = min(workers, len(tasks))

    def report(entries):
        for e in entries:
            if e["status"] != "ok":
                logging.warning("Skipping %s: %s", e["path"], e["reason"])
            elif e["reason"]:
                logging.warning("%s: %s", e["path"], e["reason"])
        bar.update(len(entries))

    try:
        if workers <= 1:
            for task in tasks:
                report(_write_shard_task(task)[1])
        else:
            # spawn: workers must not inherit a forked TensorFlow runtime.
            with multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker, initargs=(os.getpid(),), maxtasksperchild=64
            ) as pool:
                for _, entries in pool.imap_unordered(_write_shard_task, tasks):
                    report(entries)
    finally:
        bar.close()  # Before any error line: that line is the last one shown.


def _check_or_write_config(output_dir, config):
    path = os.path.join(output_dir, CONFIG)
    if os.path.exists(path):
        with open(path) as f:
            previous = json.load(f)
        if previous != config:
            changed = sorted(k for k in config if previous.get(k) != config[k])
            raise ValueError(
                f"--output_dir={output_dir!r} was prepared with other settings or another "
                f"input listing (differs in: {', '.join(changed)}); use a new output folder."
            )
        return
    _write_atomically(path, json.dumps(config, indent=1))


def _write_atomically(path, text):
    tmp = atomic.temporary_path(path)
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
