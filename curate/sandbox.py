"""Per-record limits: a time limit for every per-record step, including native code that cannot be
interrupted from inside its own process.

- `deadline(seconds)`: raises RecordTimeout in Python code that runs longer (SIGALRM, in a process's
  main thread; elsewhere there is no alarm to use and the step runs unlimited).
- `Sandbox`: a child process that applies one function to items, one at a time, each with a time limit.
  An item over it is answered with RecordTimeout and the child is killed and replaced: a C extension that
  loops for minutes (resiliparse on 100,000 nested `<div>`s) holds its process, not the run. The parent
  waits on a pipe, so Ctrl-C reaches it at once.

Kept light: the child imports only this module and the function's own.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from curate.errors import CurateError

DEFAULT_RECORD_SECONDS = 20.0  # a web page takes milliseconds; one that takes this long is hostile


STARTUP_SECONDS = 120.0  # what a new child may take to import its function's module


class RecordTimeout(Exception):
    """One record took longer than the per-record time limit."""


class RecordTooLarge(Exception):
    """One record is larger than a per-record step accepts."""


def die_with(parent: int) -> None:
    """Linux: have the kernel kill this process when `parent` dies (even by SIGKILL), so no worker or
    sandbox outlives a killed run."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        return
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """RecordTimeout raised in the block once it has run `seconds` (None or 0: no limit). An alarm needs
    the main thread; in other threads the block runs without one."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise RecordTimeout(f"over the per-record time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn, target: str, options: dict, parent: int) -> None:
    """The child: answer each batch of items with (index, ok, result) one item at a time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills this child
    die_with(parent)
    func = _resolve(target)
    conn.send("ready")
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        for index, item in batch:
            try:
                conn.send((index, True, func(item, **options)))
            except Exception as exc:  # noqa: BLE001 - the item's failure is the caller's to report
                # the type only: a message can quote the record, and reasons never quote values
                conn.send((index, False, f"the engine failed with {type(exc).__name__}"))


def _stop(proc, conn) -> None:
    proc.kill()
    proc.join()
    conn.close()


class Sandbox:
    """`func(item, **options)` (`target` = "module:function") run in a child process over items, each
    within `seconds`. `map` returns, per item, the result, or an exception: RecordTimeout for an item
    over the limit, RuntimeError for one the function failed on (naming the error)."""

    def __init__(self, target: str, options: dict | None = None, seconds: float = DEFAULT_RECORD_SECONDS):
        self.target, self.options, self.seconds = target, options or {}, seconds
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        """A new child, ready once it has imported the function; one that cannot start (3 tries) is not one
        record's fault, and stops the run with a clear error."""
        for _ in range(3):
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(
                target=_serve, args=(child, self.target, self.options, os.getpid()), name="curate-sandbox", daemon=True
            )
            self._proc.start()
            child.close()
            self._finalizer = weakref.finalize(self, _stop, self._proc, self._conn)  # a dropped sandbox ends its child
            if self._conn.poll(STARTUP_SECONDS) and self._ready():
                return
            self.close()
        raise CurateError(f"the sandbox process for {self.target} does not start (3 tries)")

    def _ready(self) -> bool:
        try:
            return self._conn.recv() == "ready"
        except EOFError:  # it died while importing
            return False

    def close(self) -> None:
        if self._proc is not None:
            self._finalizer()
            self._proc = self._conn = None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def map(self, items: list) -> list[Any]:
        results: list[Any] = [None] * len(items)
        todo = list(enumerate(items))
        try:
            while todo:
                if self._proc is None:
                    self._start()
                try:
                    self._conn.send(todo)
                except (BrokenPipeError, ConnectionResetError):  # the child died before it read: the item
                    self.close()  # it was starting on is answered as failed, so every loop makes progress
                    results[todo[0][0]] = RuntimeError("the worker died")
                    todo = todo[1:]
                    continue
                todo = self._collect(todo, results)
        except BaseException:  # Ctrl-C or a broken child: never leave it running
            self.close()
            raise
        return results

    def _collect(self, todo: list[tuple[int, Any]], results: list[Any]) -> list[tuple[int, Any]]:
        """Read the answers to `todo` in order; on a timeout (or a dead child) the item is answered with
        the error, the child replaced, and the items after it returned to be sent again."""
        for pos, (index, _) in enumerate(todo):
            limit = self.seconds
            started = time.monotonic()
            while not self._conn.poll(min(1.0, max(0.0, limit - (time.monotonic() - started)))):
                if time.monotonic() - started >= limit or not self._proc.is_alive():
                    why = "timed out" if self._proc.is_alive() else f"the worker died (exit {self._proc.exitcode})"
                    self.close()
                    results[index] = (
                        RecordTimeout(f"over the per-record time limit of {self.seconds:g} s")
                        if why == "timed out"
                        else RuntimeError(why)
                    )
                    return todo[pos + 1 :]
            try:
                got, ok, value = self._conn.recv()
            except EOFError:  # it died on this item (a native crash, the OOM killer)
                self._proc.join()
                results[index] = RuntimeError(f"the worker died (exit {self._proc.exitcode})")
                self.close()
                return todo[pos + 1 :]
            assert got == index, "the child answers in order"
            results[index] = value if ok else RuntimeError(value)
        return []
