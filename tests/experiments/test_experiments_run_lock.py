"""``run.lock``: held while a run trains, gone when it stops, never held twice."""

from __future__ import annotations

import threading
from pathlib import Path

from robustcompress.experiments.store import LOCK_FILE, is_locked, run_lock


def test_the_lock_file_goes_and_a_waiter_takes_over_safely(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-0123456789"
    events: list[str] = []
    first_in, release_first, second_waits = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with run_lock(run_dir):
            first_in.set()
            release_first.wait(10)
            events.append("first out")

    def second() -> None:
        first_in.wait(10)
        with run_lock(run_dir, on_wait=second_waits.set):
            # the waiter locked the lock file now in place (not the deleted one)
            held = (run_dir / LOCK_FILE).is_file() and is_locked(run_dir)
            events.append(f"second in, holding the file in place: {held}")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert second_waits.wait(10)
    assert is_locked(run_dir)
    release_first.set()
    for t in threads:
        t.join(10)
    assert events == ["first out", "second in, holding the file in place: True"]
    assert not (run_dir / LOCK_FILE).exists() and not is_locked(run_dir)


def test_is_locked_never_creates_the_lock_file(tmp_path: Path) -> None:
    with run_lock(tmp_path):
        pass
    assert not is_locked(tmp_path) and not (tmp_path / LOCK_FILE).exists()
