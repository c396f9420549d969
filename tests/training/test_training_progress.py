"""The run log and progress reporters (robustcompress.training.progress)."""

from __future__ import annotations

import io
from pathlib import Path

from robustcompress.training.progress import (
    PlainReporter,
    RichReporter,
    RunLog,
    make_reporter,
)


def _drive(reporter: PlainReporter | RichReporter) -> None:
    reporter.start(total_epochs=2, steps_per_epoch=20, first_epoch=1)
    reporter.epoch_started(1, done_steps=0)
    for step in range(1, 21):
        reporter.step_done(step, loss=1.0 / step)
    reporter.tracking_started(2)
    reporter.tracker_done()
    reporter.tracker_done()
    reporter.tracking_done()
    reporter.epoch_done(1)
    reporter.message("epoch 1/2 done")
    reporter.close()


def test_plain_reporter_logs_a_progress_line_every_interval(tmp_path: Path) -> None:
    echo = io.StringIO()
    ticks = iter(range(1000))  # one second per call of the clock
    reporter = PlainReporter(
        RunLog(tmp_path / "log.txt", echo=echo), interval=6.0, clock=lambda: float(next(ticks))
    )
    _drive(reporter)
    lines = (tmp_path / "log.txt").read_text().splitlines()
    steps = [line for line in lines if "step " in line and "/20 (global" in line]
    assert 2 <= len(steps) <= 5  # at most one per 6 s of ≈ 2 s per step (no line at step 20)
    assert all("steps/s, ETA " in line for line in steps)
    assert lines[-1].endswith("] epoch 1/2 done")
    assert echo.getvalue().splitlines() == lines


def test_rich_reporter_writes_messages_to_the_log(tmp_path: Path) -> None:
    _drive(RichReporter(RunLog(tmp_path / "log.txt")))
    assert (tmp_path / "log.txt").read_text().strip().endswith("epoch 1/2 done")


def test_make_reporter_falls_back_to_plain_lines_off_a_terminal(tmp_path: Path) -> None:
    reporter = make_reporter(tmp_path / "log.txt", interactive=False, echo=False)
    assert isinstance(reporter, PlainReporter) and reporter.log.echo is None
    reporter.close()
    rich = make_reporter(None, interactive=True)
    assert isinstance(rich, RichReporter)
    rich.close()
