"""Training progress: a rich progress bar on a TTY, plain log lines otherwise."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """Rich progress bar on a TTY; plain log lines every ``log_every`` steps otherwise."""

    def __init__(self, total: int, start: int, enabled: bool, log_every: int, label: str) -> None:
        self.enabled = enabled
        self.log_every = log_every
        self.bar = None
        self.t0 = time.time()
        self.start = start
        self.total = total
        if enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, completed=start, info="")

    def update(self, step: int, loss: float, lr: float) -> None:
        """Show step ``step`` of ``total`` with its loss and learning rate."""
        if not self.enabled:
            return
        info = f"loss {loss:.4f} lr {lr:.2e}"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif step == self.total or (self.log_every and step % self.log_every == 0):
            rate = (step - self.start) / max(time.time() - self.t0, 1e-9)
            print(f"step {step}/{self.total} {info} ({rate:.2f} step/s)", flush=True)

    def close(self) -> None:
        """Stop the bar (if any)."""
        if self.bar is not None:
            self.bar.stop()
