"""Progress and the run log: rich bars on a terminal, plain log lines otherwise.

Every message goes to the run's ``log.txt`` (timestamped, flushed per line). On
top of that a reporter shows progress: :class:`RichReporter` draws bars for
epochs, steps and evaluation when stderr is a terminal, with the rate (steps/s) and
the time remaining; :class:`PlainReporter` prints the same information as log lines
(for pipes, CI and sweep workers), at most one progress line every
:data:`PLAIN_INTERVAL_S` seconds. :func:`make_reporter` picks one.
:class:`EvaluationDisplay` does the same for an attack evaluation
(:func:`robustcompress.evaluation.evaluate`'s ``progress`` callback).

Progress always goes to stderr, never stdout (stdout carries ``--json`` output). It is
turned off by ``ROBUSTCOMPRESS_PROGRESS=off`` (also ``0``, ``no``, ``false``);
``ROBUSTCOMPRESS_PROGRESS=plain`` asks for plain lines even on a terminal
(:func:`progress_mode`). Turning progress off keeps the run's own messages (start,
one line per epoch, end): only the bars and the periodic lines go.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Literal

#: Environment variable switching progress display: ``off``, ``plain`` or ``auto``.
PROGRESS_ENV = "ROBUSTCOMPRESS_PROGRESS"

#: Shortest time between two plain progress lines, in seconds.
PLAIN_INTERVAL_S = 5.0

Clock = Callable[[], float]
Mode = Literal["off", "plain", "live"]

_OFF = {"0", "off", "no", "false", "none", "quiet"}


def progress_mode(requested: bool | None = None, stream: IO[str] | None = None) -> Mode:
    """How to show progress on ``stream`` (default stderr).

    ``off`` when ``requested`` is False or ``$ROBUSTCOMPRESS_PROGRESS`` is ``off``
    (``0``, ``no``, ``false``); ``plain`` when the variable is ``plain`` or the stream
    is not a terminal; otherwise ``live`` (a rich bar).
    """
    setting = os.environ.get(PROGRESS_ENV, "auto").strip().lower()
    if requested is False or setting in _OFF:
        return "off"
    if setting == "plain":
        return "plain"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "live" if isatty is not None and isatty() else "plain"


class Throttle:
    """``ready()`` is True at most once every ``interval`` seconds of ``clock``."""

    def __init__(self, interval: float = PLAIN_INTERVAL_S, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def start(self) -> None:
        """Count the interval from now (the first ``ready()`` comes after one interval)."""
        self._last = self.clock()

    def ready(self) -> bool:
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def format_duration(seconds: float) -> str:
    """``75.2`` → ``1:15``, ``3725`` → ``1:02:05``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_and_eta(done: float, total: float | None, elapsed: float) -> tuple[float, float]:
    """``(done / elapsed, (total − done) / rate)``; NaN where it is not known yet."""
    rate = done / elapsed if elapsed > 0 and done > 0 else math.nan
    if total is None or not math.isfinite(rate):
        return rate, math.nan
    return rate, max(0.0, total - done) / rate


def _rate_text(rate: float, unit: str) -> str:
    return f"{rate:.1f} {unit}/s" if math.isfinite(rate) else f"? {unit}/s"


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
    """Log lines: the trainer's messages, and a progress line (step, loss, steps/s and
    the time left for the whole run) at most every ``interval`` seconds.

    With ``steps=False`` only the messages are written (progress turned off).
    """

    def __init__(
        self,
        log: RunLog,
        *,
        interval: float = PLAIN_INTERVAL_S,
        clock: Clock = time.monotonic,
        steps: bool = True,
    ) -> None:
        super().__init__(log)
        self.steps = steps
        self.clock = clock
        self._throttle = Throttle(interval, clock)
        self._epoch = 0
        self._total = 0
        self._steps_per_epoch = 1
        self._in_epoch = 0
        self._started = clock()
        self._first_step: int | None = None

    def start(self, total_epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        self._total = total_epochs
        self._steps_per_epoch = steps_per_epoch
        self._started = self.clock()
        self._first_step = None
        self._throttle.start()

    def epoch_started(self, epoch: int, done_steps: int) -> None:
        self._epoch = epoch
        self._in_epoch = done_steps

    def step_done(self, step: int, loss: float) -> None:
        self._in_epoch += 1
        if self._first_step is None:
            self._first_step = step - 1
        if not self.steps or self._in_epoch >= self._steps_per_epoch:
            return  # the epoch's end gets the trainer's own message
        if self._throttle.ready():
            rate, eta = rate_and_eta(
                step - self._first_step,
                self._total * self._steps_per_epoch - self._first_step,
                self.clock() - self._started,
            )
            self.log(
                f"epoch {self._epoch}/{self._total} step {self._in_epoch}/"
                f"{self._steps_per_epoch} (global {step}): loss {loss:.4f}; "
                f"{_rate_text(rate, 'steps')}, ETA {format_duration(eta)}"
            )


def _rich_progress(console: Any, description_width: int = 10) -> Any:
    """A rich ``Progress`` with bar, done/total, rate (``task.fields['unit']``/s),
    elapsed time, time remaining and an ``info`` field."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            unit = task.fields.get("unit", "")
            if not unit:
                return Text("")
            speed = task.finished_speed or task.speed
            return Text(_rate_text(speed if speed is not None else math.nan, unit))

    return Progress(
        TextColumn(f"{{task.description:<{description_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


class RichReporter(Reporter):
    """Rich progress bars (epochs, steps, evaluation) on stderr with rates and time
    remaining; messages above the bars."""

    def __init__(self, log: RunLog, console: Any = None) -> None:
        super().__init__(log)
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.progress = _rich_progress(self.console)
        self._tasks: dict[str, Any] = {}
        self.progress.start()

    def message(self, text: str) -> None:
        self.log(text)
        self.progress.console.print(text, markup=False, highlight=False)

    def start(self, total_epochs: int, steps_per_epoch: int, first_epoch: int) -> None:
        add = self.progress.add_task
        self._tasks["epochs"] = add(
            "epochs", total=total_epochs, completed=first_epoch - 1, info="", unit=""
        )
        self._tasks["steps"] = add("steps", total=steps_per_epoch, info="", unit="steps")
        self._tasks["eval"] = add("evaluation", total=1, info="", visible=False, unit="")

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
    """A :class:`RichReporter` when ``interactive`` (default: :func:`progress_mode` is
    ``live``, i.e. stderr is a terminal), else a :class:`PlainReporter` echoing log lines
    to stderr when ``echo``. With ``$ROBUSTCOMPRESS_PROGRESS=off`` it is a
    :class:`PlainReporter` without progress lines (the run's messages stay).
    """
    mode = progress_mode()
    if interactive is None:
        interactive = mode == "live"
    if interactive and mode != "off":
        return RichReporter(RunLog(log_path))
    log = RunLog(log_path, echo=sys.stderr if echo else None)
    return PlainReporter(log, steps=mode != "off")


class EvaluationDisplay:
    """Shows :func:`robustcompress.evaluation.evaluate`'s progress on stderr.

    Use it as the evaluation's ``progress`` callback, inside a ``with`` block. It reads
    the event's ``attack``, ``eps``, ``inputs_done``, ``inputs_total`` and
    ``work_done`` (inputs' worth of attack runs finished). ``live``: a rich bar with
    images/s and the time left; ``plain``: a line at most every ``interval`` seconds
    (and one at the end); ``off``: nothing. ``mode=None`` asks :func:`progress_mode`.
    """

    def __init__(
        self,
        mode: Mode | None = None,
        *,
        stream: IO[str] | None = None,
        interval: float = PLAIN_INTERVAL_S,
        clock: Clock = time.monotonic,
        console: Any = None,
        label: str = "attack",
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.mode: Mode = progress_mode(stream=self.stream) if mode is None else mode
        self.clock = clock
        self.label = label
        self._throttle = Throttle(interval, clock)
        self._started = clock()
        self._last: Any = None
        self._progress: Any = None
        self._task: Any = None
        if self.mode == "live":
            from rich.console import Console

            self._progress = _rich_progress(
                console if console is not None else Console(file=self.stream),
                description_width=16,
            )

    def __enter__(self) -> EvaluationDisplay:
        self._started = self.clock()  # the first event gets a line, then one per interval
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: Any) -> None:
        self._last = event
        stage = self._stage(event)
        if self.mode == "live":
            if self._task is None:
                self._task = self._progress.add_task(
                    stage, total=event.inputs_total, unit="images", info=""
                )
            self._progress.update(self._task, description=stage, completed=event.work_done)
        elif self.mode == "plain" and (event.attack is None or self._throttle.ready()):
            print(self.line(event), file=self.stream, flush=True)

    def line(self, event: Any) -> str:
        """The plain line for ``event``: stage, inputs done of total, images/s, ETA."""
        total = event.inputs_total
        rate, eta = rate_and_eta(event.work_done, total, self.clock() - self._started)
        done = f"{event.inputs_done}/{total}" if total is not None else f"{event.inputs_done}"
        share = f" ({100 * event.work_done / total:.0f}%)" if total else ""
        tail = (
            f"done in {format_duration(self.clock() - self._started)}"
            if event.attack is None
            else f"ETA {format_duration(eta)}"
        )
        return (
            f"{self.label}: {self._stage(event)}; {done} inputs done{share}, "
            f"{_rate_text(rate, 'images')}, {tail}"
        )

    @staticmethod
    def _stage(event: Any) -> str:
        if event.attack is None:
            return "finished"
        return event.attack if event.eps is None else f"{event.attack} ε={event.eps:g}"

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
