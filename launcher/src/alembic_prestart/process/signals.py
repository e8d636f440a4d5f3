"""Signal handling while the launcher has a child: handlers record the signal and forward it."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def signal_process_group(pgid: int, signum: int) -> None:
    """Signal a whole process group; a group that is already gone is not an error."""
    try:
        os.killpg(pgid, signum)
    except OSError as error:
        if error.errno not in (errno.ESRCH, errno.EPERM):
            raise


class SignalState:
    """The first signal received (its number), and where to forward signals."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.forward_to_group: int | None = None

    def handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        if self.forward_to_group is not None:
            # The child is a Python program: SIGINT would print a KeyboardInterrupt traceback
            # (a CancelledError chain under asyncio) of a hundred lines; SIGTERM ends it quietly
            # and just as well (its open transaction is rolled back by the server).
            forwarded = signal.SIGTERM if signum == signal.SIGINT else signum
            signal_process_group(self.forward_to_group, forwarded)


@contextlib.contextmanager
def capture_signals() -> Iterator[SignalState]:
    """Install handlers for SIGTERM, SIGINT and SIGHUP; restore the originals on exit.

    The originals must be back before os.execvp: dispositions set to "ignore" survive exec.
    """
    state = SignalState()
    originals: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    for signum in HANDLED_SIGNALS:
        originals[signum] = signal.signal(signum, state.handle)
    try:
        yield state
    finally:
        for signum, handler in originals.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def stop_if_signalled(signals: SignalState, during: str) -> None:
    """Raise the launcher's error for a signal that came `during` a phase (exit 128+N)."""
    from alembic_prestart.errors import SupervisorError, exit_code_for_signal

    if signals.received is not None:
        name = signal.Signals(signals.received).name
        raise SupervisorError(f"stopped by {name} {during}", exit_code_for_signal(signals.received))
