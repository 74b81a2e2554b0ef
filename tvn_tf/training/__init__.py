"""Training and evaluation: the loop, its schedule, strategies and metrics."""
