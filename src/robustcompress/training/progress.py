"""Progress and the run log: rich bars on a terminal, plain log lines otherwise.

Every message goes to the run's ``log.txt`` (timestamped, flushed per line). On
top of that a reporter shows progress: :class:`RichReporter` draws bars for
epochs, steps and evaluation when stderr is a terminal; :class:`PlainReporter`
prints the same information as log lines (for pipes, CI and sweep workers).
:func:`make_reporter` picks one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any


class RunLog:
    """Appends timestamped lines to ``log.txt`` and optionally echoes them to a stream.

    The file is opened for each line (messages are a few per epoch), so nothing is
    left open and a killed run loses no line that was logged.
    """

    def __init__(self, path: str | Path | None, echo: IO[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.echo = echo
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}"
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        if self.echo is not None:
            print(line, file=self.echo, flush=True)

    def close(self) -> None:
        """Nothing to release (kept for symmetry with the reporters)."""


class Reporter:
    """Progress hooks called by the trainer; this base class only writes the log."""

    def __init__(self, log: RunLog) -> None:
        self.log = log

    def message(self, text: str) -> None:
        self.log(text)

    def start(self, total_epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        """Training starts (or resumes) at ``first_epoch`` (1-based)."""

    def epoch_started(self, epoch: int, done_steps: int) -> None:
        """An epoch starts; ``done_steps`` of it were already done before a resume."""

    def step_done(self, step: int, loss: float) -> None:
        """One optimiser step finished."""

    def tracking_started(self, count: int) -> None:
        """Evaluation with ``count`` trackers starts."""

    def tracker_done(self) -> None:
        """One tracker finished."""

    def tracking_done(self) -> None:
        """Evaluation finished."""

    def epoch_done(self, epoch: int) -> None:
        """An epoch finished."""

    def close(self) -> None:
        self.log.close()


class PlainReporter(Reporter):
    """Log lines only: a line about every tenth of an epoch, plus the trainer's messages."""

    def __init__(self, log: RunLog) -> None:
        super().__init__(log)
        self._every = 1
        self._epoch = 0
        self._steps_per_epoch = 1
        self._in_epoch = 0

    def start(self, total_epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        self._total = total_epochs
        self._steps_per_epoch = steps_per_epoch
        self._every = max(1, steps_per_epoch // 10)

    def epoch_started(self, epoch: int, done_steps: int) -> None:
        self._epoch = epoch
        self._in_epoch = done_steps

    def step_done(self, step: int, loss: float) -> None:
        self._in_epoch += 1
        if self._in_epoch % self._every == 0 and self._in_epoch < self._steps_per_epoch:
            self.log(
                f"epoch {self._epoch}/{self._total} step {self._in_epoch}/"
                f"{self._steps_per_epoch} (global {step}): loss {loss:.4f}"
            )


class RichReporter(Reporter):
    """Rich progress bars (epochs, steps, evaluation) on stderr; messages above the bars."""

    def __init__(self, log: RunLog) -> None:
        super().__init__(log)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self.progress.start()

    def message(self, text: str) -> None:
        self.log(text)
        self.progress.console.print(text, markup=False, highlight=False)

    def start(self, total_epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        add = self.progress.add_task
        self._tasks["epochs"] = add(
            "epochs", total=total_epochs, completed=first_epoch - 1, info=""
        )
        self._tasks["steps"] = add("steps", total=steps_per_epoch, info="")
        self._tasks["eval"] = add("evaluation", total=1, info="", visible=False)

    def epoch_started(self, epoch: int, done_steps: int) -> None:
        self.progress.reset(self._tasks["steps"], completed=done_steps, info=f"epoch {epoch}")

    def step_done(self, step: int, loss: float) -> None:
        self.progress.update(self._tasks["steps"], advance=1, info=f"loss {loss:.4f}")

    def tracking_started(self, count: int) -> None:
        self.progress.reset(self._tasks["eval"], total=count, completed=0, visible=True)

    def tracker_done(self) -> None:
        self.progress.advance(self._tasks["eval"])

    def tracking_done(self) -> None:
        self.progress.update(self._tasks["eval"], visible=False)

    def epoch_done(self, epoch: int) -> None:
        self.progress.update(self._tasks["epochs"], completed=epoch)

    def close(self) -> None:
        self.progress.stop()
        super().close()


def make_reporter(
    log_path: str | Path | None, *, interactive: bool | None = None, echo: bool = True
) -> Reporter:
    """A :class:`RichReporter` when ``interactive`` (default: stderr is a terminal),
    else a :class:`PlainReporter` echoing log lines to stderr when ``echo``.
    """
    if interactive is None:
        interactive = sys.stderr.isatty()
    if interactive:
        return RichReporter(RunLog(log_path))
    return PlainReporter(RunLog(log_path, echo=sys.stderr if echo else None))
