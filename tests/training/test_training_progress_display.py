"""Progress display: rate-limited plain lines, rates and ETAs, the off switch, the
evaluation display (robustcompress.training.progress)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from robustcompress.training.progress import (
    PROGRESS_ENV,
    EvaluationDisplay,
    PlainReporter,
    RichReporter,
    RunLog,
    Throttle,
    format_duration,
    make_reporter,
    progress_mode,
    rate_and_eta,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Event:
    attack: str | None
    eps: float | None
    inputs_done: int
    inputs_total: int | None
    work_done: float


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_throttle_lets_one_call_through_per_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(5.0, clock)
    seen = []
    for _ in range(30):  # 0.5 s apart: 15 s in all
        seen.append(throttle.ready())
        clock.now += 0.5
    assert sum(seen) == 3 and seen[0]  # at 0 s, 5 s and 10 s
    throttle.start()
    assert not throttle.ready()


def test_durations_rates_and_etas() -> None:
    assert format_duration(75.2) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(math.nan) == "?"
    assert rate_and_eta(50, 200, 10.0) == (5.0, 30.0)
    rate, eta = rate_and_eta(0, 200, 10.0)
    assert math.isnan(rate) and math.isnan(eta)


def test_plain_training_lines_are_rate_limited_and_give_rate_and_eta(tmp_path: Path) -> None:
    clock = FakeClock()
    echo = io.StringIO()
    reporter = PlainReporter(RunLog(tmp_path / "log.txt", echo=echo), interval=5.0, clock=clock)
    reporter.start(total_epochs=2, steps_per_epoch=100, first_epoch=1)
    reporter.epoch_started(1, done_steps=0)
    for step in range(1, 101):  # 0.125 s per step: 12.5 s for the epoch
        clock.now += 0.125
        reporter.step_done(step, loss=0.5)
    lines = echo.getvalue().splitlines()
    assert len(lines) == 2  # at 5 s and 10 s; the epoch's end is the trainer's own message
    assert "epoch 1/2 step 40/100 (global 40): loss 0.5000; 8.0 steps/s, ETA 0:20" in lines[0]
    assert "step 80/100 (global 80)" in lines[1] and "ETA 0:15" in lines[1]


def test_plain_training_eta_counts_only_steps_of_this_process(tmp_path: Path) -> None:
    clock = FakeClock()
    echo = io.StringIO()
    reporter = PlainReporter(RunLog(None, echo=echo), interval=5.0, clock=clock)
    reporter.start(total_epochs=2, steps_per_epoch=100, first_epoch=2)  # resumed
    reporter.epoch_started(2, done_steps=0)
    for step in range(101, 151):
        clock.now += 0.2
        reporter.step_done(step, loss=0.5)
    assert "5.0 steps/s, ETA 0:10" in echo.getvalue()  # 50 of 100 steps left, at 5/s


def test_progress_mode_env_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert progress_mode(stream=io.StringIO()) == "plain"
    assert progress_mode(stream=Terminal()) == "live"
    assert progress_mode(False, stream=Terminal()) == "off"
    monkeypatch.setenv(PROGRESS_ENV, "plain")
    assert progress_mode(stream=Terminal()) == "plain"
    for off in ("off", "0", "no", "false"):
        monkeypatch.setenv(PROGRESS_ENV, off)
        assert progress_mode(True, stream=Terminal()) == "off"


def test_progress_off_keeps_messages_but_drops_bars_and_step_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "off")
    reporter = make_reporter(tmp_path / "log.txt", interactive=True)
    assert isinstance(reporter, PlainReporter) and not reporter.steps
    reporter.start(1, 1000, 1)
    reporter.epoch_started(1, 0)
    for step in range(1, 1000):
        reporter.step_done(step, 1.0)
    reporter.message("done")
    reporter.close()
    assert [line.split("] ", 1)[1] for line in (tmp_path / "log.txt").read_text().splitlines()] == [
        "done"
    ]


def test_rich_reporter_shows_the_step_rate(tmp_path: Path) -> None:
    from rich.console import Console

    out = io.StringIO()
    reporter = RichReporter(RunLog(None), console=Console(file=out, force_terminal=True, width=120))
    reporter.start(1, 10, 1)
    reporter.epoch_started(1, 0)
    for step in range(1, 11):
        reporter.step_done(step, 0.1)
    reporter.close()
    assert "steps/s" in out.getvalue() and "ETA" in out.getvalue()


def _events(total: int | None = 200) -> list[Event]:
    out = []
    for batch in range(4):
        for k, (attack, eps) in enumerate([("pgd", 0.05), ("fgsm", 0.1)]):
            out.append(Event(attack, eps, 50 * batch, total, 50 * batch + 25 * k))
    return [*out, Event(None, None, 200, total, 200.0)]


def test_plain_evaluation_display_is_rate_limited_and_always_ends() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    with EvaluationDisplay("plain", stream=stream, interval=5.0, clock=clock) as display:
        for event in _events():
            display(event)
            clock.now += 2.0  # 16 s in all
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # events every 2 s: lines at 0, 6 and 12 s (5 s apart at least), the end
    assert lines[0] == "attack: pgd ε=0.05; 0/200 inputs done (0%), ? images/s, ETA ?"
    assert lines[1] == "attack: fgsm ε=0.1; 50/200 inputs done (38%), 12.5 images/s, ETA 0:10"
    assert lines[-1] == "attack: finished; 200/200 inputs done (100%), 12.5 images/s, done in 0:16"


def test_plain_evaluation_display_without_a_known_total() -> None:
    stream = io.StringIO()
    with EvaluationDisplay("plain", stream=stream, clock=FakeClock()) as display:
        display(Event("pgd", None, 0, None, 0.0))
    assert stream.getvalue().startswith("attack: pgd; 0 inputs done, ")


def test_off_and_live_evaluation_display() -> None:
    stream = io.StringIO()
    with EvaluationDisplay("off", stream=stream) as display:
        for event in _events():
            display(event)
    assert stream.getvalue() == ""

    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140)
    with EvaluationDisplay("live", console=console) as display:
        for event in _events():
            display(event)
    text = out.getvalue()
    assert "images/s" in text and "200/200" in text and "ETA" in text
