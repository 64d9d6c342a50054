"""Background services the server runs in its own process (``server start``).

Today that is the scheduler (``scheduler.service.Scheduler``): it turns schedules into
runs, promotes due runs, marks late ones and reaps lost leases. It is imported lazily and
skipped cleanly when not installed, so the API works without it. A service runs in a
daemon thread: its own ``run(stop_event)`` loop when it has one, else ``tick(now)`` at a
fixed cadence. A failure is logged and the service resumes after ``tick_seconds``: a
server must not lose its scheduler to one bad tick.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from prefect_lite import _time
from prefect_lite.settings import Settings

logger = logging.getLogger("prefect_lite.server.services")
DEFAULT_TICK_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class ServiceThread:
    """One service's loop in a daemon thread, stopped through ``stop_event``."""

    name: str
    service: Any
    tick_seconds: float = DEFAULT_TICK_SECONDS
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"service-{self.name}", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        self.stop_event.set()
        stop = getattr(self.service, "stop", None)
        if callable(stop):
            try:
                stop()
            except Exception:
                logger.exception("stopping the %s service failed", self.name)
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                logger.warning("the %s service did not stop within %s s", self.name, timeout)

    def _main(self) -> None:
        run = getattr(self.service, "run", None)
        own_loop = callable(run) and _takes_argument(run)
        while not self.stop_event.is_set():
            try:
                if own_loop:
                    run(self.stop_event)  # type: ignore[misc]
                else:
                    self.service.tick(_time.now())
            except Exception:
                logger.exception("%s failed; again in %s s", self.name, self.tick_seconds)
            self.stop_event.wait(self.tick_seconds)


def _takes_argument(fn: Any) -> bool:
    try:
        return len(inspect.signature(fn).parameters) >= 1
    except (TypeError, ValueError):
        return False


def load_scheduler(settings: Settings) -> ServiceThread | None:
    """The scheduler as a service, or None (logged) when it is not installed or unusable."""
    try:
        module = importlib.import_module("scheduler.service")
    except ModuleNotFoundError as exc:
        if exc.name in ("scheduler", "scheduler.service"):
            logger.info("no scheduler service installed; schedules will not run here")
            return None
        raise
    cls = getattr(module, "Scheduler", None)
    if cls is None:
        logger.warning("scheduler.service has no Scheduler; schedules will not run here")
        return None
    try:
        wanted = set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        wanted = set()
    service = cls(settings=settings) if "settings" in wanted else cls()
    if not callable(getattr(service, "run", None)) and not callable(getattr(service, "tick", None)):
        logger.warning("the Scheduler has neither run() nor tick(); schedules will not run here")
        return None
    tick = getattr(service, "tick_seconds", None) or getattr(service, "interval", None)
    return ServiceThread("scheduler", service, float(tick or DEFAULT_TICK_SECONDS))


class Services:
    """The set of in-process services: started with the app, stopped with it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running: list[ServiceThread] = []

    def start(self) -> list[str]:
        """Start every available service; returns their names."""
        for loader in (load_scheduler,):
            service = loader(self.settings)
            if service is not None:
                service.start()
                self.running.append(service)
        return [s.name for s in self.running]

    def stop(self) -> None:
        for service in reversed(self.running):
            service.stop()
        self.running.clear()
