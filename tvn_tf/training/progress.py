"""What a training run shows as it goes: the step bar on the chief, and its clips per second."""

from __future__ import annotations

import time

from tqdm import tqdm


class Progress:
    """A progress bar on the chief: step, loss, learning rate, clips/s, ETA.

    Args:
      total: The run's last step.
      initial: The step it starts from (a resumed run's).
      enabled: Whether to show it (the chief, unless turned off); a disabled
        bar ignores every call.
    """

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled:
            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="step",
                dynamic_ncols=True,
                mininterval=1.0,
                smoothing=0.1,
            )

    def update(self, n: int, **postfix) -> None:
        """Advances the bar by `n` steps and shows `postfix` beside it."""
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)

    def write(self, text: str) -> None:
        """Prints a line above the bar."""
        if self.bar is not None:
            self.bar.write(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Throughput:
    """Clips per second over a window of steps that restarts every 30 s."""

    def __init__(self, batch_size: int, start: float):
        self.batch_size, self.start, self.steps = batch_size, start, 0

    def tick(self) -> float:
        """Counts one step; returns the clips per second of the window so far."""
        self.steps += 1
        now = time.perf_counter()
        clips_per_s = self.steps * self.batch_size / max(now - self.start, 1e-9)
        if now - self.start > 30:
            self.start, self.steps = now, 0
        return clips_per_s
