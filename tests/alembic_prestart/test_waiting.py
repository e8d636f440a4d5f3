"""The launcher's one waiting policy (waiting.py): deadline, growing pauses, progress cadence."""

from __future__ import annotations

import time

import pytest
from alembic_prestart import waiting
from alembic_prestart.waiting import PROGRESS_EVERY_SECONDS, Patience


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(waiting.time, "monotonic", fake)
    return fake


def test_pauses_double_up_to_the_most_and_never_pass_the_deadline(clock: Clock) -> None:
    patience = Patience(5.0, first=0.1, most=2.0)
    assert [patience.next_pause() for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    clock.now += 4.5
    assert patience.next_pause() == pytest.approx(0.5)  # what is left, not 2.0
    clock.now += 0.5
    assert patience.expired() and patience.next_pause() == 0.0


def test_a_fixed_pause_when_first_and_most_agree(clock: Clock) -> None:
    patience = Patience(60.0, first=0.1)
    assert {patience.next_pause() for _ in range(5)} == {0.1}


def test_progress_is_due_at_once_then_every_five_seconds(clock: Clock) -> None:
    patience = Patience(60.0, first=0.1)
    assert patience.progress_due()
    assert not patience.progress_due()
    clock.now += PROGRESS_EVERY_SECONDS - 0.01
    assert not patience.progress_due()
    clock.now += 0.01
    assert patience.progress_due()
    assert patience.elapsed() == pytest.approx(PROGRESS_EVERY_SECONDS)


def test_a_sleep_ends_as_soon_as_it_should_stop() -> None:
    patience = Patience(60.0, first=5.0)
    started = time.monotonic()
    patience.sleep(should_stop=lambda: time.monotonic() - started > 0.1)
    assert time.monotonic() - started < 1.0
