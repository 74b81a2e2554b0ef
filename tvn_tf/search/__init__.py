"""Architecture search for Tiny Video Networks (`python -m tvn_tf.search`).

`space`: the searched fields, priors, sampling, one-part mutation, canonical form.
`algorithms`: what each trial evaluates: random search or tournament evolution.
`config`: a worker's settings (`SearchConfig`, the proxy training) and their checks.
`records`: the names a study stores its trials under; counted, population, best.
`storage`: the study database (SQLite or PostgreSQL), heartbeats.
`study`: opening, creating or resuming a study; its settings.
`latency`: TFLite timing of a candidate, and the machine lock.
`proxy`: the candidates' brief training, the best's retraining.
`workers`: dead workers' trials retried, waits explained, the progress bar.
`engine`: one worker: proposes, measures, trains and records candidates.
`report`: trials.csv, best_architecture.json, search_report.png.
`statistics`: paired comparisons, bootstrap intervals and rank correlation for the benchmarks.
"""
