"""Imports tvn_tf before any test module imports TensorFlow, as every binary does.

The package's start-up (tvn_tf/platform_setup.py) caps oneDNN below AMX where AMX
traps; it can only do so before TensorFlow loads.
"""

import tvn_tf  # noqa: F401
