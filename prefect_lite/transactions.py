"""Transactions: a group of task runs that commits or rolls back as one.

``with Transaction(key="k", timeout=300) as txn:`` (or ``transaction(...)``, or by hand:
``txn.__enter__()`` ... ``txn.commit()`` / ``txn.rollback()``). Inside it:

- task runs join the transaction: their results are staged, and their cache records and
  ``@task_fn.on_commit`` hooks are written/run when it commits (wait for runs submitted
  inside the block before it ends: one that finishes later has nothing left to join).
  A task run that fails rolls it back, and so does an exception leaving the block (which
  is re-raised): ``@task_fn.on_rollback`` hooks run, newest first, each receiving the
  transaction;
- nested transactions commit with their parent (children first); a parent's rollback
  rolls its children back, and a child's rollback rolls back its parent;
- with a ``key``: the transaction holds a lock in Redis (``P:lock:txn:{key}``) from enter
  to commit/rollback, so concurrent transactions on the same key, in any process, run one
  after the other. The lock expires after ``timeout`` seconds (default
  ``DEFAULT_LOCK_SECONDS``), so a crashed holder blocks others only that long. Committing
  writes a record ``txn:{key}``; a later transaction with that key starts committed
  (``is_committed`` is true on entry), and the task runs inside it that ran in the
  committed one (same task, same inputs, same order) end ``Cached`` with the committed
  results instead of running again. ``overwrite=True`` runs everything again.

``is_committed`` / ``is_rolled_back`` read as booleans and may also be called, as in
Prefect (``txn.is_committed()``).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger("prefect_lite.transactions")

DEFAULT_LOCK_SECONDS = 300.0
MAX_KEY_LENGTH = 512
_NOTSET: Any = object()


class TransactionState(enum.StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


_OPEN = (TransactionState.ACTIVE, TransactionState.STAGED)
_ENDED = (TransactionState.COMMITTED, TransactionState.ROLLED_BACK)


class Flag:
    """A boolean that can also be called (``txn.is_committed`` and ``txn.is_committed()``)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __call__(self) -> bool:
        return self.value

    def __eq__(self, other: object) -> bool:
        return bool(other) == self.value if isinstance(other, bool | Flag) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


class TransactionKey(str):
    """The cache key of a task run replayed by a keyed transaction (see module doc)."""

    transaction: Transaction


_CURRENT: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "prefect_lite.transaction", default=None
)


class Transaction:
    """A transaction; see the module docstring."""

    def __init__(
        self, key: str | None = None, timeout: float | None = None, overwrite: bool = False
    ) -> None:
        if key is not None and (
            not isinstance(key, str)
            or not key
            or len(key) > MAX_KEY_LENGTH
            or not key.isprintable()
        ):
            raise ValueError(
                f"invalid transaction key {key!r}: use a non-empty printable string of at "
                f"most {MAX_KEY_LENGTH} characters"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise ValueError(f"transaction timeout must be seconds > 0, not {timeout!r}")
        self.key = key
        self.timeout = timeout
        self.overwrite = overwrite
        self.state = TransactionState.PENDING
        self.children: list[Transaction] = []
        self.parent: Transaction | None = None
        self._staged: list[tuple[Any, Any, Any]] = []  # (task, key storage, record or None)
        self._values: dict[str, Any] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._holder: str | None = None
        self._thread: int | None = None
        self._token: contextvars.Token[Transaction | None] | None = None
        self._mutex = threading.RLock()

    @classmethod
    def get_active(cls) -> Transaction | None:
        """The innermost transaction entered in this context, or None."""
        return _CURRENT.get()

    # ------------------------------------------------------------------------- state
    @property
    def is_committed(self) -> Flag:
        return Flag(self.state is TransactionState.COMMITTED)

    @property
    def is_rolled_back(self) -> Flag:
        return Flag(self.state is TransactionState.ROLLED_BACK)

    @property
    def is_open(self) -> bool:
        return self.state in _OPEN

    def __repr__(self) -> str:
        return f"Transaction(key={self.key!r}, state={self.state.value})"

    # ------------------------------------------------------------------------ values
    def set(self, name: str, value: Any) -> None:
        """Keep a value for later in this transaction (and its children)."""
        self._values[name] = value

    def get(self, name: str, default: Any = _NOTSET) -> Any:
        """A value set here or in a parent (a copy); ``default`` or ValueError if none."""
        if name in self._values:
            return copy.deepcopy(self._values[name])
        if self.parent is not None:
            return self.parent.get(name, default)
        if default is not _NOTSET:
            return default
        raise ValueError(f"transaction {self.key!r} has no value named {name!r}")

    # ---------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Transaction:
        if self._token is not None or self.state is not TransactionState.PENDING:
            raise RuntimeError(f"{self!r} was already entered; use a new Transaction")
        self.parent = _CURRENT.get()
        if self.key is not None:
            self._lock()
            try:
                committed = not self.overwrite and _cache().has_marker(self.key)
            except BaseException:
                self._unlock()
                raise
            self.state = TransactionState.COMMITTED if committed else TransactionState.ACTIVE
        else:
            self.state = TransactionState.ACTIVE
        self._thread = threading.get_ident()
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        if self._token is None and self.state in _ENDED:
            return  # committed or rolled back by hand already
        parent = self.parent if self.parent is not None and self.parent.is_open else None
        if exc_type is not None:
            self.rollback()
        elif parent is not None and self.is_open:
            parent.children.append(self)  # it commits with the parent
        elif self.state is not TransactionState.ROLLED_BACK:
            self.commit()
        self._leave()

    def commit(self) -> bool:
        """Commit: children, then on_commit hooks, then the staged records. False if it had
        already ended (or committing failed, which rolls it back and is logged)."""
        with self._mutex:
            if self.state not in _OPEN:
                self._unlock()
                self._leave()
                return False
            try:
                for child in self.children:
                    child.commit()
                if self.state not in _OPEN:
                    return False  # a child could not commit and rolled this back
                for task, _, _ in list(self._staged):
                    for hook in getattr(task, "on_commit_hooks", ()):
                        self._run_hook(hook, "commit")
                self._write_records()
                self.state = TransactionState.COMMITTED
            except Exception:
                logger.exception("Could not commit transaction %r; rolling it back", self.key)
                self.rollback()
                return False
            finally:
                self._unlock()
                self._leave()
            return True

    def rollback(self) -> bool:
        """Roll back: on_rollback hooks newest first, then the children, then the parent
        if it is still open. False if it had already ended. A hook that raises is logged;
        the others still run."""
        if not self._rollback_here():
            return False
        parent = self.parent  # outside this one's mutex: locks are taken parent first
        if parent is not None and parent.is_open:
            parent.rollback()
        return True

    def _rollback_here(self) -> bool:
        with self._mutex:
            if self.state not in _OPEN:
                self._unlock()
                return False
            self.state = TransactionState.ROLLED_BACK
            try:
                hooks = [
                    hook
                    for task, _, _ in self._staged
                    for hook in getattr(task, "on_rollback_hooks", ())
                ]
                for hook in reversed(hooks):
                    try:
                        self._run_hook(hook, "rollback")
                    except Exception:
                        logger.exception("A rollback hook of transaction %r failed", self.key)
                for child in reversed(self.children):
                    child.rollback()
            finally:
                self._unlock()
                self._leave()
            return True

    def _run_hook(self, hook: Callable[[Transaction], Any], kind: str) -> None:
        logger.debug("Running %s hook %r of transaction %r", kind, hook, self.key)
        outcome = hook(self)
        if hasattr(outcome, "__await__"):
            from prefect_lite.engine.hooks import _run_coroutine

            _run_coroutine(outcome)

    def _leave(self) -> None:
        """Stop being the current transaction, when called where it was entered (a task
        run's thread that rolls it back leaves that to the block's exit)."""
        if self._token is None or threading.get_ident() != self._thread:
            return
        if _CURRENT.get() is self:
            with contextlib.suppress(ValueError):  # entered in another asyncio context
                _CURRENT.reset(self._token)
        self._token = None

    # ------------------------------------------------------------------------ staging
    def stage(self, task: Any, key_storage: Any = None, record: Any = None) -> bool:
        """Add a finished task run (and its cache record) to be committed; False if the
        transaction is not open (the caller then writes the record itself)."""
        with self._mutex:
            if self.state not in _OPEN:
                return False
            self._staged.append((task, key_storage, record))
            self.state = TransactionState.STAGED
            return True

    def staged_record(self, key: str) -> Any:
        """A record staged under ``key`` here, in a child or in an ancestor, or None."""
        txn: Transaction | None = self
        while txn is not None:
            found = txn._find_staged(key)
            if found is not None:
                return found
            txn = txn.parent if txn.parent is not None and txn.parent.is_open else None
        return None

    def _find_staged(self, key: str) -> Any:
        for _, _, record in reversed(self._staged):
            if record is not None and record.key == key:
                return record
        for child in self.children:
            found = child._find_staged(key)
            if found is not None:
                return found
        return None

    def _write_records(self) -> None:
        by_storage: dict[int, tuple[Any, list[Any]]] = {}
        for _, storage, record in self._staged:
            if record is not None:
                by_storage.setdefault(id(storage), (storage, []))[1].append(record)
        if self.key is not None:
            default = _cache().default_key_storage()
            by_storage.setdefault(id(default), (default, []))[1].append(
                _cache().marker_record(self.key)
            )
        for storage, records in by_storage.values():
            storage.write(records)

    def next_task_key(self, task_key: str, inputs: str) -> TransactionKey:
        """The replay key of the next run of ``task_key`` with ``inputs`` in this keyed
        transaction (``txn:{key}:{task key}:{inputs hash}:{n}``)."""
        with self._mutex:
            n = self._counters.get((task_key, inputs), 0)
            self._counters[(task_key, inputs)] = n + 1
        made = TransactionKey(f"txn:{self.key}:{task_key}:{inputs}:{n}")
        made.transaction = self
        return made

    # --------------------------------------------------------------------------- lock
    def _lock(self) -> None:
        key = self.key
        assert key is not None
        ancestor = self.parent
        while ancestor is not None:
            if ancestor.key == key and ancestor._holder is not None:
                return  # an enclosing transaction with this key holds the lock
            ancestor = ancestor.parent
        client = _client()
        holder = uuid.uuid4().hex
        hold = float(self.timeout or DEFAULT_LOCK_SECONDS)
        delay, waited = 0.005, False
        while not client.acquire_transaction_lock(key, holder, hold):
            if not waited:
                logger.info("Transaction %r is held by another run; waiting for it", key)
                waited = True
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        if waited:
            logger.info("Transaction %r acquired after waiting", key)
        self._holder = holder

    def _unlock(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None or self.key is None:
            return
        if not _client().release_transaction_lock(self.key, holder):
            logger.warning(
                "The lock of transaction %r expired before it ended (timeout %s s): another "
                "run may have entered it meanwhile",
                self.key,
                self.timeout or DEFAULT_LOCK_SECONDS,
            )


def get_transaction() -> Transaction | None:
    """The innermost transaction entered in this context, or None."""
    return _CURRENT.get()


def keyed_transaction() -> Transaction | None:
    """The innermost open or committed transaction that has a key, or None."""
    txn = _CURRENT.get()
    while txn is not None and txn.key is None:
        txn = txn.parent
    return txn


@contextlib.contextmanager
def transaction(
    key: str | None = None, timeout: float | None = None, overwrite: bool = False
) -> Iterator[Transaction]:
    """``with transaction(key=...) as txn:``, the same as ``with Transaction(...)``."""
    with Transaction(key=key, timeout=timeout, overwrite=overwrite) as txn:
        yield txn


def _client() -> Any:
    from prefect_lite.engine.scope import engine_client

    return engine_client()


def _cache() -> Any:
    from prefect_lite.results import cache

    return cache


__all__ = [
    "DEFAULT_LOCK_SECONDS",
    "Transaction",
    "TransactionState",
    "get_transaction",
    "transaction",
]
