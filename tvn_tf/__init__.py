"""Tiny Video Networks in TensorFlow 2 / Keras 3.

Importing the package caps oneDNN below AMX on CPUs whose AMX traps, which must
happen before TensorFlow loads (see platform_setup); elsewhere it changes nothing.
"""

from tvn_tf import platform_setup

platform_setup.cap_amx()
