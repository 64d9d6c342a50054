"""The processes that run flow runs: a zygote forks warm children, each runs one flow run.

A worker starts one **zygote** (``python -m workers.process FD``): a single-threaded
process that imports the engine once and forks a child whenever asked. A forked child
starts with everything imported and waits, warm, on its channel (a socket to the worker)
for its assignment; so a claimed run's flow body starts in milliseconds, and a segfault,
``os._exit`` or out-of-memory kill in user code ends only that child. A child runs one
flow run at a time and, between runs, puts back what a run changes in its process
(working directory, environment, ``sys.path``, modules of user code); after
``recycle_after`` runs (``--runs-per-process``; 1 = a fresh process for every run), or a
run it was asked to stop, it exits and a fresh one takes its place.

Zygote -> worker messages travel on a SOCK_SEQPACKET socket: ``F<pid>`` with the new
child's channel attached (SCM_RIGHTS), and ``X<pid> <exit code>`` when a child ended (the
zygote is their parent and reaps them). A child whose channel closes (its worker died)
kills itself: its run's lease then expires and the reaper takes over.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

logger = logging.getLogger("prefect_lite.workers.process")

FORK_TIMEOUT_SECONDS = 30.0


class ZygoteGone(RuntimeError):
    """The process that forks children is not there (a fresh one can be started)."""


@dataclass(eq=False)
class Child:
    """A forked child, warm until assigned one flow run (or one crashed run's hooks)."""

    pid: int
    channel: Connection
    run_id: str | None = None
    kind: str = "run"
    lease: str = ""
    assigned_at: float = 0.0
    cancel_sent_at: float | None = None
    cancel_reason: str | None = None
    renewed_at: float = 0.0  # monotonic: when its lease was last renewed (or claimed)
    fenced: str | None = None  # why its worker killed it for want of a lease
    done: tuple[Any, ...] | None = None  # what the child reported when its run ended
    exit_code: int | None = None
    exited: threading.Event = field(default_factory=threading.Event)

    def assign(self, kind: str, run_id: str, **payload: Any) -> None:
        self.kind, self.run_id, self.done = kind, run_id, None
        self.lease, self.assigned_at = str(payload.get("lease", "")), time.monotonic()
        self.renewed_at = self.assigned_at
        self.cancel_sent_at = self.cancel_reason = self.fenced = None
        self.channel.send((kind, run_id, payload))

    @property
    def retiring(self) -> bool:
        return bool(self.done and self.done[-1])

    def signal(self, signum: int) -> bool:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True


class Zygote:
    """The worker's handle on its zygote: fork children, learn how they exit."""

    def __init__(self, on_exit: Callable[[int, int], None] | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.process", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._ctrl = ours
        self._forked: queue.Queue[Child] = queue.Queue()
        self._send_lock = threading.Lock()
        self.pending = 0  # forks asked for, not arrived yet
        self._on_exit = on_exit
        self.exit_codes: dict[int, int] = {}
        self._exits = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def fork(self) -> Child:
        """A new warm child (blocks until the zygote forked it)."""
        self.request_fork()
        return self.take_forked(FORK_TIMEOUT_SECONDS)

    def request_fork(self) -> None:
        with self._send_lock:
            self.pending += 1
            self._ctrl.send(b"F")

    def ready(self) -> int:
        """Children forked or asked for and not taken yet."""
        return self._forked.qsize() + self.pending

    def take_forked(self, timeout: float) -> Child:
        """The next forked child; ``ZygoteGone`` if the zygote died or did not fork."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._forked.get(timeout=0.1)
            except queue.Empty:
                if not self.alive():
                    exited = describe_exit(self.proc.poll())
                    raise ZygoteGone(f"the zygote exited ({exited})") from None
                if time.monotonic() > deadline:
                    raise ZygoteGone(f"the zygote did not fork within {timeout:g} s") from None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, pid: int, timeout: float) -> int | None:
        with self._exits:
            self._exits.wait_for(lambda: pid in self.exit_codes, timeout)
            return self.exit_codes.pop(pid, None)

    def _read(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._ctrl, 64, 1)
            except OSError:
                data, fds = b"", []
            if not data:
                return
            kind, body = data[:1], data[1:].decode()
            if kind == b"F":
                channel = Connection(fds[0])
                with self._send_lock:
                    self.pending -= 1
                self._forked.put(Child(pid=int(body), channel=channel))
            elif kind == b"X":
                pid_text, code_text = body.split()
                pid, code = int(pid_text), int(code_text)
                with self._exits:
                    self.exit_codes[pid] = code
                    while len(self.exit_codes) > 1000:  # nobody waited for the oldest
                        del self.exit_codes[next(iter(self.exit_codes))]
                    self._exits.notify_all()
                if self._on_exit is not None:
                    self._on_exit(pid, code)

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self._ctrl.shutdown(socket.SHUT_RDWR)
        self._ctrl.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def describe_exit(code: int | None) -> str:
    """``exit code 3`` / ``killed by SIGSEGV`` / ``an unknown exit``."""
    if code is None:
        return "an unknown exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


# ----------------------------------------------------------------------------- zygote side


def zygote_main(fd: int) -> None:
    """Import the engine once, then fork a child per request until the worker goes away."""
    ctrl = socket.socket(fileno=fd)
    from prefect_lite.deployments.execution import preload

    preload()  # what every child needs, imported once here

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    while True:
        ready, _, _ = select.select([ctrl.fileno(), wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)
            _reap(ctrl)
        if ctrl.fileno() in ready:
            try:
                request = ctrl.recv(16)
            except OSError:
                request = b""
            if not request:
                return  # the worker is gone; children notice on their own channels
            _fork_child(ctrl, (wake_r, wake_w))


def _reap(ctrl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):
            ctrl.send(f"X{pid} {os.waitstatus_to_exitcode(status)}".encode())


def _fork_child(ctrl: socket.socket, wake: tuple[int, int]) -> None:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for closing in (*wake, ctrl.fileno(), ours.fileno()):
                os.close(closing)
            code = child_main(theirs)
        except BaseException:
            logger.exception("a worker child failed")
            code = 70
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    theirs.close()
    socket.send_fds(ctrl, [f"F{pid}".encode()], [ours.fileno()])
    ours.close()


# ----------------------------------------------------------------------------- child side


def child_main(sock: socket.socket) -> int:
    """Carry out assignments until told to retire or the worker goes; the exit code.

    After each run the child reports ``("done", state type, state name, retiring)`` and
    restores what the run changed in the process (``ProcessState``); it retires after
    ``recycle_after`` runs, after a run it was asked to stop (SIGTERM), and after hooks.
    """
    channel = Connection(sock.detach())
    from prefect_lite.deployments import execution

    threading.Thread(target=_die_with_worker, args=(channel.fileno(),), daemon=True).start()
    baseline = execution.ProcessState()
    done = 0
    while True:
        try:
            kind, run_id, payload = channel.recv()
        except (EOFError, OSError):
            return 0  # retired while idle (the worker stopped or shrank its pool)
        if kind == "hooks":
            execution.run_crashed_hooks(run_id, payload.get("policy"))
            channel.send(("done", None, None, True))
            return 0
        if payload.get("owner"):  # our connections show the reaper the worker's run lives
            from prefect_lite.storage import keys
            from prefect_lite.storage.connection import set_client_name

            set_client_name(keys.owner_client_name(payload["owner"]))
        execution.install_termination_handler()
        state = execution.execute_flow_run(
            run_id,
            payload["lease"],
            payload["lease_seconds"],
            payload.get("worker"),
            payload.get("policy"),
        )
        done += 1
        retiring = execution.terminating() or done >= payload.get("recycle_after", 1)
        summary = (state.type.value, state.name) if state is not None else (None, None)
        channel.send(("done", *summary, retiring))
        if retiring:
            return 0
        baseline.restore()


def _die_with_worker(fd: int) -> None:
    """The worker closes our channel only by dying or stopping: then so do we (a run's
    lease will expire). Watches for the hang-up without reading the channel."""
    hang_up = getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR  # Linux has RDHUP
    poller = select.poll()
    poller.register(fd, hang_up)
    while True:
        for _fd, events in poller.poll():
            if events & hang_up:
                os.kill(os.getpid(), signal.SIGKILL)


def execute_flow_run(flow_run_id: str) -> None:
    """What an RQ job of ours names. prefect_lite's workers never call it: they claim runs
    through ``storage.delivery``; ``rq worker`` on our queues would end here."""
    raise RuntimeError(
        f"flow run {flow_run_id} belongs to a prefect_lite worker: run "
        "`prefect-lite worker start --pool POOL` instead of `rq worker`"
    )


if __name__ == "__main__":
    zygote_main(int(sys.argv[1]))
