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
- `sampling`: which frame indices make a clip.
- `augment`: clip-consistent augmentation (one random draw per clip).
- `preprocessing`: resizing and THE normalisation, shared with export.
- `pipeline`: the `tf.data` pipelines (TFRecords, or the `.avi` tree directly).
- `dataset`: the front door: the data config, loading a prepared folder or a
  video tree with its split, and `make_clips`, which picks the pipeline.
- `demo_data`: a small synthetic dataset in the UCF50 layout.

Nothing is imported here, so that light modules (`layout`, `video`,
`demo_data`) load without TensorFlow.
"""
