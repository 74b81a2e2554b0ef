"""Architecture search for Tiny Video Networks (`python -m tvn_tf.search`).

`space`: the searched fields, priors, sampling, one-part mutation, canonical form.
`engine`: tournament or random search on an Optuna study (SQLite or PostgreSQL).
`report`: trials.csv, best_architecture.json, search_report.png.
"""
