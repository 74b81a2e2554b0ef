"""Tiny Video Networks in TensorFlow 2 / Keras 3.

Importing the package first sets the environment TensorFlow reads when it loads
(oneDNN's AMX cap where AMX traps, quiet start-up logs): see platform_setup.
"""

from tvn_tf import platform_setup

platform_setup.set_up()
