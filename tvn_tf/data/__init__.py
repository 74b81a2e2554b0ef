"""Video data: from a folder of videos to batches of normalised clips.

Modules, in the order the data flows:

- `layout`: scan a UCF50-style tree (label from the class folder, group and clip
  from the file name).
- `splits`: group-wise splits (leave-one-group-out, k-fold over groups,
  validation from whole training groups).
- `video`: decode and write AVI files with PyAV.
- `records`: the TFRecord `SequenceExample` schema (one JPEG per frame), writer
  and parser.
- `prepare`: turn a video tree into sharded TFRecords (`tools/prepare_ucf50.py`).
- `sampling`: which frames make a clip, and the sample phase of the pipelines.
- `decoding`: read the sampled frames (JPEGs of a record, or PyAV) and decode them.
- `augment`: clip-consistent augmentation (one random draw per clip).
- `preprocessing`: resizing and THE normalisation, shared with export.
- `batching`: labels, ids, evaluation views and batches.
- `pipeline`: the `tf.data` pipelines (TFRecords, or the `.avi` tree directly),
  from the phases above.
- `dataset`: the front door: the data config, loading a prepared folder or a
  video tree with its split, and `make_clips`, which picks the pipeline.
- `demo_data`: synthetic datasets in the UCF50 layout (the easy demo preset,
  and the writer of both presets); `motion_data` and `motion_scene`: the
  motion preset; `drawing`: the shapes both draw.

Nothing is imported here, so that light modules (`layout`, `splits`, `video`,
`demo_data`, `motion_data`, `motion_scene`, `drawing`) load without TensorFlow.
"""
