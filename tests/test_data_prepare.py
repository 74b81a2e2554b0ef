"""tools/prepare_ucf50.py and `prepare`, run as real subprocesses."""

import json
import os
import shutil
import signal
import time

import tensorflow as tf

from tvn_tf.data import records
from tests.isolated import run_module, run_module_cases, start_module
from tests.video_fixtures import make_tree, write_index_video, write_truncated


def _run(tool, *flags):
    return run_module(f"tools/{tool}", *flags)


def _snapshot(root):
    """Every path under root with its size and mtime."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def _outputs(out_dir):
    return {
        name: (out_dir / name).read_bytes()
        for name in sorted(os.listdir(out_dir))
        if not name.startswith(".")
    }


def test_prepare_writes_records_manifest_and_resumes(tmp_path):
    videos, out = tmp_path / "UCF", tmp_path / "out"
    # Billiards' files are spelled "Billards", as in UCF50.
    make_tree(videos, classes=("Billiards", "Punch"), groups=(1, 2), clips=2, num_frames=8)
    os.rename(
        videos / "Billiards" / "v_Billiards_g01_c01.avi",
        videos / "Billiards" / "v_Billards_g01_c01.avi",
    )
    write_index_video(videos / "Punch" / "v_Punch_g02_c03.avi", 9, audio=True, fps=30)
    write_index_video(videos / "Punch" / "v_Punch_g01_c03.avi", 4, width=400, height=226)
    (videos / "Punch" / "v_Punch_g01_c04.avi").write_bytes(b"")
    (videos / "Punch" / "v_Punch_g01_c05.avi").write_text("not a video")
    write_truncated(
        videos / "Punch" / "v_Punch_g02_c01.avi", videos / "Punch" / "v_Punch_g02_c06.avi", 0.05
    )
    (videos / "Punch" / "notes.txt").write_text("hello")
    before = _snapshot(videos)

    result = _run(
        "prepare_ucf50.py",
        f"--input_dir={videos}",
        f"--output_dir={out}",
        "--workers=2",
        "--videos_per_shard=2",
        "--short_side=48",
    )
    assert result.returncode == 0, result.stderr
    assert "Found 14 files" in result.stdout
    assert _snapshot(videos) == before  # nothing written under the input folder

    assert json.loads((out / "classes.json").read_text()) == ["Billiards", "Punch"]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_path = {m["path"]: m for m in manifest}
    assert len(manifest) == 14
    assert by_path["Billiards/v_Billards_g01_c01.avi"] == {
        "path": "Billiards/v_Billards_g01_c01.avi",
        "label": 0,
        "group": 1,
        "clip": 1,
        "status": "ok",
        "reason": "",
        "frames": 8,
    }
    assert by_path["Punch/v_Punch_g01_c04.avi"]["reason"] == "empty file (0 bytes)"
    assert "not a readable video" in by_path["Punch/v_Punch_g01_c05.avi"]["reason"]
    assert by_path["Punch/v_Punch_g02_c06.avi"]["status"] == "skipped"
    assert "does not match" in by_path["Punch/notes.txt"]["reason"]
    assert by_path["Punch/v_Punch_g02_c03.avi"]["frames"] == 9
    assert sum(m["status"] == "ok" for m in manifest) == 10
    for name in ("Punch/v_Punch_g01_c04.avi", "Punch/v_Punch_g02_c06.avi"):
        assert name in result.stderr  # reported with its path

    shards = sorted(p for p in os.listdir(out) if p.endswith(".tfrecord"))
    assert shards[0] == "g01-00000-of-00004.tfrecord"
    assert not [p for p in os.listdir(out) if ".tmp" in p]
    parsed = {}
    for shard in shards:
        for serialized in tf.data.TFRecordDataset(str(out / shard)):
            r = records.parse_sequence_example(serialized)
            parsed[r["source_path"].numpy().decode()] = r
            assert r["group"].numpy() == int(shard[1:3])
    wide = parsed["Punch/v_Punch_g01_c03.avi"]
    assert (wide["height"].numpy(), wide["width"].numpy(), wide["num_frames"].numpy()) == (
        48,
        84,
        4,
    )
    assert tf.io.decode_jpeg(wide["frames"][0]).shape == (48, 84, 3)
    audio = parsed["Punch/v_Punch_g02_c03.avi"]
    assert abs(audio["fps"].numpy() - 30) < 1e-3 and audio["class_name"].numpy() == b"Punch"
    assert audio["label"].numpy() == 1 and audio["clip"].numpy() == 3

    # Idempotent: a rerun changes nothing.
    first = _outputs(out)
    assert (
        _run(
            "prepare_ucf50.py",
            f"--input_dir={videos}",
            f"--output_dir={out}",
            "--workers=1",
            "--videos_per_shard=2",
            "--short_side=48",
        ).returncode
        == 0
    )
    assert _outputs(out) == first
    # Resumable: a lost shard (and a half-written one) is rewritten, the others kept.
    os.remove(out / shards[1])
    (out / (shards[1] + ".tmp")).write_bytes(b"partial")
    kept_mtime = os.stat(out / shards[0]).st_mtime_ns
    result = _run(
        "prepare_ucf50.py",
        f"--input_dir={videos}",
        f"--output_dir={out}",
        "--workers=1",
        "--videos_per_shard=2",
        "--short_side=48",
    )
    assert result.returncode == 0
    assert f"Resuming: {len(shards) - 1} of {len(shards)} shards" in result.stdout
    assert _outputs(out) == first
    assert os.stat(out / shards[0]).st_mtime_ns == kept_mtime


def test_prepare_rejects_bad_flags(tmp_path):
    videos = tmp_path / "UCF"
    make_tree(videos, classes=("A",), groups=(1,), clips=1, num_frames=4)
    out = tmp_path / "out"
    done = _run("prepare_ucf50.py", f"--input_dir={videos}", f"--output_dir={out}", "--workers=1")
    assert done.returncode == 0, done.stderr[-2000:]
    cases = [  # (flags, what the error says), all run in one child process.
        (
            [f"--input_dir={tmp_path / 'missing'}", f"--output_dir={tmp_path / 'new'}"],
            "is not a directory",
        ),
        ([f"--input_dir={videos}", f"--output_dir={videos / 'out'}"], "inside --input_dir"),
        (
            [f"--input_dir={videos}", f"--output_dir={out}", "--workers=1", "--short_side=64"],
            "short_side",
        ),
    ]
    results = run_module_cases("tools/prepare_ucf50.py", [flags for flags, _ in cases])
    for result, (_, expected) in zip(results, cases):
        assert result.returncode != 0 and expected in result.stderr, result.stderr[-2000:]
    assert not (videos / "out").exists() and not (tmp_path / "new").exists()


def test_output_dir_reached_through_a_link_into_the_input_is_refused(tmp_path):
    videos = tmp_path / "UCF"
    make_tree(videos, classes=("A",), groups=(1,), clips=1, num_frames=4)
    (tmp_path / "link").symlink_to(videos / "A")
    before = _snapshot(videos)
    result = _run(
        "prepare_ucf50.py", f"--input_dir={videos}", f"--output_dir={tmp_path / 'link' / 'out'}"
    )
    assert result.returncode != 0 and "inside --input_dir" in result.stderr
    assert "Traceback" not in result.stderr
    assert _snapshot(videos) == before and not (videos / "A" / "out").exists()


def test_linked_folders_are_read_once_and_group_00_is_skipped(tmp_path):
    videos, out = tmp_path / "UCF", tmp_path / "out"
    make_tree(videos, classes=("Alpha", "Beta"), groups=(1,), clips=1, num_frames=4)
    make_tree(tmp_path / "elsewhere", classes=("Gamma",), groups=(1,), clips=1, num_frames=4)
    write_index_video(videos / "Alpha" / "v_Alpha_g00_c01.avi", 4)
    (videos / "self").symlink_to(".")  # The whole tree again.
    (videos / "Again").symlink_to("Alpha")  # One class under a second name.
    (videos / "Gamma").symlink_to(tmp_path / "elsewhere" / "Gamma")  # A class kept elsewhere.
    result = _run("prepare_ucf50.py", f"--input_dir={videos}", f"--output_dir={out}", "--workers=1")
    assert result.returncode == 0, result.stderr
    assert "skipping folder 'self'" in result.stderr
    assert "skipping folder 'Again'" in result.stderr
    assert json.loads((out / "classes.json").read_text()) == ["Alpha", "Beta", "Gamma"]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(m["path"], m["status"]) for m in manifest] == [
        ("Alpha/v_Alpha_g00_c01.avi", "skipped"),
        ("Alpha/v_Alpha_g01_c01.avi", "ok"),
        ("Beta/v_Beta_g01_c01.avi", "ok"),
        ("Gamma/v_Gamma_g01_c01.avi", "ok"),
    ]
    assert "group 00" in manifest[0]["reason"]
    assert "Alpha/v_Alpha_g00_c01.avi" in result.stderr  # Reported with its reason.


def _children(pid):
    """PIDs of the processes whose parent is `pid` (from /proc)."""
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def _alive(pid):
    """Running, neither gone nor a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_rerun_right_after_a_kill_writes_every_video_once(tmp_path):
    videos, out = tmp_path / "UCF", tmp_path / "out"
    source = write_index_video(tmp_path / "source.avi", 30, width=160, height=120)
    names = []
    for name in ("Alpha", "Beta"):
        os.makedirs(videos / name)
        for group in range(1, 4):
            for clip in range(1, 5):
                names.append(f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi")
                shutil.copy(source, videos / names[-1])
    flags = [
        f"--input_dir={videos}",
        f"--output_dir={out}",
        "--workers=2",
        "--videos_per_shard=1",
    ]
    killed = start_module("tools/prepare_ucf50.py", *flags, output=False)
    deadline = time.monotonic() + 120
    while killed.poll() is None and time.monotonic() < deadline:
        if out.exists() and any(n.endswith(".tfrecord") for n in os.listdir(out)):
            break
        time.sleep(0.02)
    workers = _children(killed.pid)
    assert workers, "no pool workers seen"
    os.kill(killed.pid, signal.SIGKILL)  # Its pool workers are orphaned.
    killed.wait()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "the killed run's workers are still running"

    result = _run("prepare_ucf50.py", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [m["path"] for m in manifest] == sorted(names)
    assert all(m["status"] == "ok" and m["frames"] == 30 for m in manifest)
    stored = []
    for shard in sorted(n for n in os.listdir(out) if n.endswith(".tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(out / shard)):
            r = records.parse_sequence_example(serialized)
            stored.append(r["source_path"].numpy().decode())
            assert len(r["frames"]) == 30
    assert sorted(stored) == sorted(names)


# Says it is ready (argv[3].ready<PID>), then writes one shard of the videos named
# in argv[4:] once the file argv[3] exists.
_WRITE_SHARD = r"""
import os, sys, time
from tvn_tf.data import layout, records
entries = [layout.VideoFile(p, "A", 0, 1, i + 1) for i, p in enumerate(sys.argv[4:])]
open(f"{sys.argv[3]}.ready{os.getpid()}", "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.005)
records.write_shard(sys.argv[1], entries, sys.argv[2], short_side=0)
"""


def test_two_processes_writing_one_shard_at_once_do_not_mix(tmp_path):
    # What a rerun does while a killed run's worker still writes the same shard.
    videos, out = tmp_path / "UCF", tmp_path / "out"
    source = write_index_video(tmp_path / "source.avi", 30, width=160, height=120)
    names = [f"A/v_A_g01_c{c:02d}.avi" for c in range(1, 13)]
    os.makedirs(videos / "A")
    os.makedirs(out)
    for name in names:
        shutil.copy(source, videos / name)
    go = tmp_path / "go"
    writers = [
        start_module("-c", _WRITE_SHARD, str(out / "g01.tfrecord"), str(videos), str(go), *names)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 300  # Both import TensorFlow, then start together.
    while len(list(tmp_path.glob("go.ready*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()[-2000:]
    assert os.listdir(out) == ["g01.tfrecord"]
    stored = [
        records.parse_sequence_example(s)["source_path"].numpy().decode()
        for s in tf.data.TFRecordDataset(str(out / "g01.tfrecord"))
    ]
    assert stored == names
