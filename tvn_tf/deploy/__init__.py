"""Taking a trained TVN to where it runs: the serving SavedModel, TFLite, parity, Android,
and loading any of them back (`loading`)."""
