"""Failures a user can meet in any command, each as one line and a documented exit code, never a
traceback: a full disk, a folder that cannot be written, Ctrl-C, a worker the system killed.

Every `curate` command runs inside `CurateGroup.invoke`, so the mapping is in one place.
"""

from __future__ import annotations

import errno
import os
from concurrent.futures.process import BrokenProcessPool

import typer
from typer.core import TyperGroup

# exit codes (the README's table): 1 `shards verify` found problems, 2 configuration or input error,
# 3 accounting broken, 4 a `fail` gate did not pass, 5 the system refused (disk, permissions), 130 Ctrl-C
CONFIG, ACCOUNTING, GATES, SYSTEM, INTERRUPTED = 2, 3, 4, 5, 130

_DISK_FULL = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
_RESUME = "the finished batches are kept: run the same command again to resume"


def system_failure(exc: BaseException) -> str | None:
    """One line for a failure of the system rather than of the data or the configuration, else None."""
    text = str(exc)
    code = getattr(exc, "errno", None)
    where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    if code in (errno.ENOSPC, errno.EDQUOT) or any(s in text for s in _DISK_FULL):
        return f"disk full{where}: free space, or point --out / output.work_dir elsewhere; {_RESUME}"
    if code == errno.EROFS:
        return f"read-only file system{where}: choose a writable folder"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}: the folder or file cannot be written or read by this user"
    if isinstance(exc, BrokenProcessPool):
        return f"a worker process ended abruptly (killed, or out of memory; try fewer --workers); {_RESUME}"
    if isinstance(exc, MemoryError):
        return f"out of memory: lower batch_size or --workers; {_RESUME}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or text or type(exc).__name__}{where}"
    return None


class CurateGroup(TyperGroup):
    """Runs each command with the system's failures and Ctrl-C turned into one line and an exit code."""

    def invoke(self, ctx):
        from rich.console import Console
        from rich.markup import escape

        if os.environ.get("CURATE_DEBUG"):  # the traceback, for a bug report
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            Console(stderr=True).print(f"[bold red]interrupted:[/] nothing was published; {_RESUME}", soft_wrap=True)
            raise typer.Exit(INTERRUPTED) from None
        except (OSError, MemoryError, BrokenProcessPool) as exc:
            line = system_failure(exc)
            if line is None:
                raise
            Console(stderr=True).print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True)
            raise typer.Exit(SYSTEM) from None
        except Exception as exc:  # polars and pyarrow report a full disk as their own errors
            if not any(s in str(exc) for s in _DISK_FULL):
                raise
            Console(stderr=True).print(f"[bold red]error:[/] {escape(system_failure(exc) or '')}", soft_wrap=True)
            raise typer.Exit(SYSTEM) from None
