"""SIGTERM ends a local flow run CRASHED, naming the signal.

``kill``, ``timeout``, ``docker stop`` and systemd stop a process with SIGTERM, whose
default action ends the process at once: a flow run in it would stay Running. While the
outermost flow run of a plain Python process runs (main thread, SIGTERM still at its
default), ``crash_on_sigterm()`` turns the signal into a ``TerminationSignal`` raised in
the flow: the engine records CRASHED ("... received SIGTERM"), then the exception ends the
process. A handler someone else installed (a worker's child, a user's own) is left alone;
SIGINT keeps its behaviour (KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from prefect_lite.exceptions import TerminationSignal

SIGTERM_MESSAGE = "the flow run's process received SIGTERM"
FALLBACK_SECONDS = 5.0


@contextlib.contextmanager
def crash_on_sigterm(outermost: bool, settle: Callable[[BaseException], None]) -> Iterator[None]:
    """While the block runs, SIGTERM raises ``TerminationSignal`` in the main thread.

    A signal can land anywhere, even in a ``__del__`` whose exceptions Python ignores: if
    the block has not ended ``FALLBACK_SECONDS`` later, a thread calls ``settle`` (records
    CRASHED) and ends the process with the status SIGTERM would have given it.
    """
    if not outermost or threading.current_thread() is not threading.main_thread():
        yield
        return
    ended = threading.Event()

    def fallback(exc: BaseException) -> None:
        if ended.wait(FALLBACK_SECONDS):
            return
        try:
            settle(exc)
        finally:
            os._exit(128 + signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process
        exc = TerminationSignal(SIGTERM_MESSAGE)
        threading.Thread(target=fallback, args=(exc,), daemon=True).start()
        raise exc

    try:
        installed = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        if installed:
            signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main interpreter
        installed = False
    try:
        yield
    finally:
        ended.set()
        if installed and signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
