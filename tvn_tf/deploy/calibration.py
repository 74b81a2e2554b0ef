"""The int8 calibration of a TVN, in a process of its own so that it overlaps other work.

Calibration runs the float model on every calibration clip on one thread,
without XNNPACK, and records each tensor's range: 0.8-1.3 s a clip of TVN-1
at 224 on a 2-core Intel Xeon VM, the longest step of an export. `export`
therefore starts it (`start`) as soon as its clips are loaded and the
conversion SavedModel is written, and writes the serving SavedModel and the
float variants while it runs; the second core is otherwise idle in its
single-threaded steps. The result is the converter's
own calibrated model, byte for byte what `int8_analysis.analyze` calibrates
in process (`calibrate`).

    running = start(saved_model_dir, clips, work_dir)
    ...                                   # other work
    analysis = int8_analysis.analyze(saved_model_dir, clips, calibrated=running.result())

Run as `python -m tvn_tf.deploy.calibration SAVED_MODEL CLIPS.npy OUT.tflite`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np


def calibrate(saved_model_dir: str, clips: np.ndarray) -> bytes:
    """The calibrated float model: `clips` run through it, each tensor's range recorded.

    The converter settings of `tflite.make_converter`'s int8 variant, calibrated
    only, as `tf.lite.experimental.QuantizationDebugger` calibrates.
    """
    from tvn_tf.deploy import int8_analysis, tflite

    converter = tflite.make_converter(saved_model_dir, "int8", np.asarray(clips, np.float32))
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # The debugger's own setting.
    with int8_analysis.quiet():
        return converter.convert()


class Running:
    """A calibration running in a child process (`start`)."""

    def __init__(self, process: subprocess.Popen, clips_path: str, output: str):
        self._process = process
        self._files = (clips_path, output)

    def result(self) -> bytes:
        """Waits for the calibration; its calibrated model.

        Raises:
          RuntimeError: the child failed (its last line said why).
        """
        _, stderr = self._process.communicate()
        clips_path, output = self._files
        os.remove(clips_path)
        if self._process.returncode:
            said = (stderr or "").strip().splitlines()[-1:] or ["no message"]
            raise RuntimeError(
                f"int8 calibration failed (exit code {self._process.returncode}): {said[0]}"
            )
        with open(output, "rb") as f:
            data = f.read()
        os.remove(output)
        return data

    def stop(self) -> None:
        """Ends the child if it still runs (the export failed)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
        for path in self._files:
            if os.path.exists(path):
                os.remove(path)


def start(saved_model_dir: str, clips: np.ndarray, work_dir: str) -> Running:
    """Starts `calibrate` in a child process; files go into `work_dir` (removed with it)."""
    clips_path = os.path.join(work_dir, ".calibration_clips.npy")
    output = os.path.join(work_dir, ".calibrated.tflite")
    np.save(clips_path, np.asarray(clips, np.float32))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [root, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tvn_tf.deploy.calibration", saved_model_dir, clips_path, output],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_die_with_parent,
    )
    return Running(process, clips_path, output)


def _die_with_parent() -> None:
    """In the child: ends it when the export dies (Linux; elsewhere it runs on until done)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> None:
    """`SAVED_MODEL CLIPS.npy OUT.tflite`: writes the calibrated model to OUT."""
    saved_model_dir, clips_path, output = argv[1:]
    data = calibrate(saved_model_dir, np.load(clips_path))
    with open(output + ".tmp", "wb") as f:
        f.write(data)
    os.replace(output + ".tmp", output)


if __name__ == "__main__":
    from tvn_tf import cli

    cli.start()
    main(sys.argv)
