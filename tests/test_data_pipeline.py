"""The tf.data pipelines of both sources, on real files whose pixels encode frame indices."""

import numpy as np
import pytest
import tensorflow as tf

from tvn_tf.data import pipeline
from tvn_tf.models.model_input import ModelInput
from tests.isolated import run_module
from tests.video_fixtures import frame_indices, make_tree, write_index_video

T, STRIDE, SIZE = 2, 4, 16  # TVN-1's clip shape, small images
CLIP = dict(num_frames=T, frame_stride=STRIDE, image_size=SIZE)
EVALUATION = dict(CLIP, training=False, with_video_ids=True)


def _pixels(clips):
    """Normalised clips [..., H, W, 3] back to [0, 255]."""
    return (np.asarray(clips) + 1.0) * 127.5


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A 2-class, 3-group tree (12-frame videos plus a 3-frame one), prepared."""
    root = tmp_path_factory.mktemp("data")
    videos, records = root / "videos", root / "records"
    make_tree(videos, groups=(1, 2, 3), clips=2, num_frames=12)
    write_index_video(videos / "Beta" / "v_Beta_g03_c03.avi", 3)
    result = run_module(
        "tools/prepare_ucf50.py",
        f"--input_dir={videos}",
        f"--output_dir={records}",
        "--workers=1",
        "--short_side=48",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return videos, records


def _collect(ds):
    clips, labels, ids = [], [], []
    for clip, label, video_id in ds:
        clips.append(clip.numpy())
        labels.append(label.numpy())
        ids.append(video_id.numpy())
    return np.concatenate(clips), np.concatenate(labels), np.concatenate(ids)


def _source(prepared, source, **kwargs):
    """The pipeline of one source, by name, over the prepared folder or its video tree."""
    if source == "tfrecord":
        return pipeline.make_tfrecord_dataset(str(prepared[1]), **kwargs)
    return pipeline.make_avi_dataset(str(prepared[0]), **kwargs)


def _training_clips(prepared, source, **kwargs):
    """Unaugmented training clips of groups 1-2 with their video ids, from either source."""
    training = dict(EVALUATION, training=True, groups=[1, 2], augment=None)
    return _source(prepared, source, **training, **kwargs)


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_evaluation_clips_are_exact_and_deterministic(prepared, source):
    kwargs = dict(EVALUATION, batch_size=5, num_clips=3, groups=[3])
    clips, labels, ids = _collect(_source(prepared, source, **kwargs))
    assert clips.shape == (5 * 3, T, SIZE, SIZE, 3) and clips.dtype == np.float32
    by_video = {}
    for clip, label, vid in zip(clips, labels, ids):
        by_video.setdefault(vid.decode(), []).append(frame_indices(_pixels(clip)))
        assert label == (0 if vid.startswith(b"Alpha/") else 1)
    assert by_video["Alpha/v_Alpha_g03_c01.avi"] == [[0, 4], [3, 7], [7, 11]]
    assert by_video["Beta/v_Beta_g03_c03.avi"] == [[0, 1]] * 3  # 3 frames: loop rule
    again = _collect(_source(prepared, source, **kwargs))
    np.testing.assert_array_equal(clips, again[0])
    np.testing.assert_array_equal(ids, again[2])


def test_both_sources_give_the_same_evaluation_clips(prepared):
    # One clip pipeline behind both: the same frames of the same videos, as far as the
    # prepared JPEGs (resized to a short side of 48) allow.
    kwargs = dict(EVALUATION, batch_size=4, num_clips=3)
    by_source = {}
    for source in ("tfrecord", "avi"):
        clips, labels, ids = _collect(_source(prepared, source, **kwargs))
        by_video = {}
        for clip, label, vid in zip(clips, labels, ids):
            by_video.setdefault(vid.decode(), []).append((int(label), clip))
        by_source[source] = by_video
    assert sorted(by_source["tfrecord"]) == sorted(by_source["avi"])
    assert len(by_source["avi"]) == 13
    for vid, clips in by_source["avi"].items():
        prepared_clips = by_source["tfrecord"][vid]
        assert [label for label, _ in clips] == [label for label, _ in prepared_clips]
        for (_, a), (_, b) in zip(clips, prepared_clips):
            assert frame_indices(_pixels(a)) == frame_indices(_pixels(b))
            np.testing.assert_allclose(a, b, atol=0.05)


def test_both_sources_draw_the_same_training_clips_for_one_seed(tmp_path):
    # One video read once, so both sources read it in the same place: the shared clip
    # pipeline gives it the same seed, hence the same clip starts, whichever source
    # decodes it (their clip shuffles hold different numbers of clips: compare sorted).
    from tvn_tf.data import prepare

    videos, prepared = tmp_path / "videos", tmp_path / "records"
    write_index_video(videos / "Alpha" / "v_Alpha_g01_c01.avi", 30)
    prepare.prepare_dataset(str(videos), str(prepared), short_side=48, workers=1, progress=False)
    kwargs = dict(EVALUATION, training=True, batch_size=1, num_clips=8, augment=None, seed=7)
    starts = {}
    for source in ("tfrecord", "avi"):
        clips, _, _ = _collect(_source((videos, prepared), source, repeat=False, **kwargs))
        starts[source] = sorted(frame_indices(_pixels(clip)) for clip in clips)
    assert starts["tfrecord"] == starts["avi"]
    assert len(starts["avi"]) == 8 and len({s[0] for s in starts["avi"]}) > 3


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_training_clips_start_at_random_frames_stride_apart(prepared, source):
    ds = _training_clips(prepared, source, batch_size=8, seed=3)
    starts = set()
    for clips, labels, ids in ds.take(12):
        assert clips.shape == (8, T, SIZE, SIZE, 3) and labels.dtype == tf.int32
        for clip, vid in zip(clips.numpy(), ids.numpy()):
            assert b"_g03_" not in vid
            first, second = frame_indices(_pixels(clip))
            assert second - first == STRIDE
            starts.add(first)
    assert starts == set(range(12 - STRIDE))  # 12 frames, span 5: starts 0..7


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_training_draws_num_clips_random_clips_per_video_read(prepared, source):
    ds = _training_clips(prepared, source, batch_size=1, num_clips=5, seed=1, repeat=False)
    starts = {}
    for clip, _, video_id in ds:
        first, second = frame_indices(_pixels(clip[0]))
        assert second - first == STRIDE
        starts.setdefault(video_id.numpy()[0], []).append(first)
    assert len(starts) == 8  # 2 classes x 2 groups x 2 clips, one pass
    assert all(len(s) == 5 for s in starts.values())
    assert any(len(set(s)) > 1 for s in starts.values())  # independent starts


def test_training_augmentation_is_the_same_on_every_frame(prepared):
    ds = pipeline.make_tfrecord_dataset(
        str(prepared[1]), **CLIP, training=True, batch_size=8, seed=0
    )
    clips, labels = next(iter(ds))
    # Frames are uniform grey: after one shared crop/flip/jitter, each frame is uniform
    # and frame 1 minus frame 0 is the same constant times the contrast for every pixel.
    diffs = np.asarray(clips[:, 1] - clips[:, 0])
    assert np.allclose(diffs, diffs.mean(axis=(1, 2, 3), keepdims=True), atol=0.02)


def test_input_context_shards_videos(prepared):
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = pipeline.make_tfrecord_dataset(
            str(prepared[1]), **EVALUATION, batch_size=4, input_context=context
        )
        ids = _collect(ds)[2]
        assert len(ids) > 0
        seen.append(set(ids.tolist()))
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 13


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_a_prepared_folder_and_its_video_tree_load_as_the_same_dataset(prepared, source):
    from tvn_tf.data import dataset as data_lib

    data_dir = prepared[1] if source == "tfrecord" else prepared[0]
    dataset = data_lib.load_dataset(data_lib.DataConfig(str(data_dir), split="all"))
    assert data_lib.is_prepared(dataset.config) == (source == "tfrecord")
    assert dataset.class_names == ("Alpha", "Beta")
    assert dataset.videos_per_group == {1: 4, 2: 4, 3: 5}


@pytest.mark.parametrize(
    ("folder", "data_format", "expected"),
    [(1, "auto", "tfrecord"), (0, "auto", "avi"), (1, "avi", "avi"), (1, "tfrecord", "tfrecord")],
)
def test_make_clips_reads_tfrecords_when_prepared_and_avis_otherwise(
    prepared, monkeypatch, folder, data_format, expected
):
    # The one source dispatch that training, evaluation, export and the benchmarks call.
    from tvn_tf.data import dataset as data_lib

    config = data_lib.DataConfig(str(prepared[folder]), data_format=data_format, split="all")
    dataset = data_lib.Dataset(
        config, ("Alpha", "Beta"), {1: 4}, data_lib.splits.GroupSplit((1,), (), ())
    )
    called = []
    monkeypatch.setattr(pipeline, "make_tfrecord_dataset", lambda d, **k: called.append("tfrecord"))
    monkeypatch.setattr(pipeline, "make_avi_dataset", lambda d, **k: called.append("avi"))

    data_lib.make_clips(dataset, [1], ModelInput(T, STRIDE, SIZE), training=False, batch_size=1)
    assert called == [expected]


def test_average_clip_scores():
    from tvn_tf.training import metrics

    ids, scores = metrics.average_clip_scores(
        np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([b"b", b"a", b"b"])
    )
    assert ids.tolist() == [b"a", b"b"]
    np.testing.assert_allclose(scores, [[0.0, 1.0], [0.75, 0.25]])


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_three_crop_evaluation_gives_each_view_its_own_element(prepared, source):
    kwargs = dict(EVALUATION, batch_size=5, num_clips=2)
    clips, labels, ids = _collect(_source(prepared, source, **kwargs))
    views, view_labels, view_ids = _collect(_source(prepared, source, num_crops=3, **kwargs))
    assert len(views) == 3 * len(clips)
    np.testing.assert_array_equal(view_ids[1::3], ids)
    np.testing.assert_array_equal(view_labels[::3], labels)
    # The centre view is the 1-crop clip; where the side views lie is pinned above
    # (these test frames are uniform, so every view looks alike).
    np.testing.assert_array_equal(views[1::3], clips)


@pytest.mark.parametrize("source", ["tfrecord", "avi"])
def test_deterministic_training_input_repeats_its_order_without_op_determinism(prepared, source):
    # What `train --deterministic` asks of the input: the same clips in the same order on
    # every run with one seed, from the parallel reads and maps alone (no op determinism).
    from tvn_tf.data import dataset as data_lib

    data_dir = prepared[1] if source == "tfrecord" else prepared[0]
    dataset = data_lib.load_dataset(data_lib.DataConfig(str(data_dir), split="all"))

    def draw():
        ds = data_lib.make_clips(
            dataset,
            dataset.split.train,
            ModelInput(T, STRIDE, SIZE),
            training=True,
            batch_size=4,
            seed=3,
            with_video_ids=True,
            deterministic=True,
        )
        return _collect(ds.take(8))

    first = draw()
    for _ in range(3):
        again = draw()
        np.testing.assert_array_equal(first[2], again[2])
        np.testing.assert_array_equal(first[0], again[0])
