"""TensorFlow's error messages cut to the one line a user needs."""

from __future__ import annotations

import re


def first_line(error: BaseException) -> str:
    """An error's message without TensorFlow's op prefix, on one line."""
    text = str(getattr(error, "message", None) or error)
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)
    return text.split(" [Op:")[0].strip().splitlines()[0][:300]
