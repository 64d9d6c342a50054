"""Timeouts for synchronous flow and task functions.

Python cannot stop a function from outside, so, as Prefect does:

- in the main thread, ``SIGALRM`` (``setitimer``) raises the timeout exception wherever the
  function is, including inside ``time.sleep`` and other blocking calls;
- in other threads (task runner workers), a timer thread injects the exception with
  ``PyThreadState_SetAsyncExc``; it is raised at the next Python bytecode, so a call
  blocked in C (a long ``time.sleep``) is interrupted only once that call returns.

Timeouts nest (a flow timeout around task timeouts): the main-thread timer is always set
for the nearest deadline and raises the exception of the block whose deadline passed.
Async functions use ``asyncio.timeout`` instead (see the engines).
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any


class Deadline:
    """``with Deadline(seconds, ExcType, message):`` raises ``ExcType(message)`` in the block
    after ``seconds``. ``fired`` tells whether this deadline (not another) raised."""

    def __init__(self, seconds: float, exc_type: type[BaseException], message: str) -> None:
        self.seconds = seconds
        self.exc_type = exc_type
        self.message = message
        self.fired = False
        self._at = 0.0
        self._timer: threading.Timer | None = None
        self._thread_id = 0
        self._lock = threading.Lock()
        self._active = False

    def __enter__(self) -> Deadline:
        self._at = time.monotonic() + self.seconds
        self._active = True
        if _can_use_signals():
            _MainThreadTimers.push(self)
        else:
            self._thread_id = threading.get_ident()
            self._timer = threading.Timer(self.seconds, self._inject)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._active = False
        if self._timer is not None:
            self._timer.cancel()
            if self.fired and not isinstance(exc, self.exc_type):
                # Injected but not raised yet: withdraw it so it cannot escape elsewhere.
                _set_async_exc(self._thread_id, None)
        else:
            _MainThreadTimers.pop(self)

    def raise_if_due(self) -> None:
        self.fired = True
        raise self.exc_type(self.message)

    def _inject(self) -> None:
        with self._lock:
            if not self._active:
                return
            self.fired = True
            _set_async_exc(self._thread_id, self.exc_type)


def _can_use_signals() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


class _MainThreadTimers:
    """The stack of active deadlines in the main thread and the one ``SIGALRM`` timer."""

    stack: list[Deadline] = []
    previous_handler: Any = None

    @classmethod
    def push(cls, deadline: Deadline) -> None:
        if not cls.stack:
            cls.previous_handler = signal.signal(signal.SIGALRM, cls._on_alarm)
        cls.stack.append(deadline)
        cls._arm()

    @classmethod
    def pop(cls, deadline: Deadline) -> None:
        if deadline in cls.stack:
            cls.stack.remove(deadline)
        if cls.stack:
            cls._arm()
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, cls.previous_handler or signal.SIG_DFL)
            cls.previous_handler = None

    @classmethod
    def _arm(cls) -> None:
        nearest = min(d._at for d in cls.stack)
        signal.setitimer(signal.ITIMER_REAL, max(nearest - time.monotonic(), 1e-4))

    @classmethod
    def _on_alarm(cls, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        due = [d for d in cls.stack if d._at <= now + 1e-3 and not d.fired]
        if not due:
            if cls.stack:
                cls._arm()
            return
        # The outermost expired block wins: its exception unwinds the inner ones too.
        target = due[0]
        if len(due) < len([d for d in cls.stack if not d.fired]):
            cls._arm_after(target)
        target.raise_if_due()

    @classmethod
    def _arm_after(cls, fired: Deadline) -> None:
        rest = [d._at for d in cls.stack if d is not fired and not d.fired]
        if rest:
            signal.setitimer(signal.ITIMER_REAL, max(min(rest) - time.monotonic(), 1e-4))
