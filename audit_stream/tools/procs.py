"""Child processes of ``audit-stream demo``: started detached from the terminal, stopped in order.

Requirements
    * Children never outlive the demo: they run in their own session (a terminal's Ctrl-C reaches
      only the demo, which stops them in order: receiver first, so that every request it answered
      is in Kafka, then the worker), and on Linux they also get SIGTERM from the kernel when the
      demo dies without cleaning up (``PR_SET_PDEATHSIG``, set by a tiny launcher before it execs
      the real command, so nothing unsafe runs between fork and exec in the demo itself).
    * Each child writes stdout and stderr to its own log file; errors quote the log's last lines.
    * Stopping is bounded: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

Example::

    >>> child = spawn("receiver", [sys.executable, "-m", "audit_stream.cli", "receiver"],
    ...               env, Path(".run/demo/receiver.log"))  # doctest: +SKIP
    >>> await stop_all([child], grace=30)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit_stream.errors import AuditStreamError

__all__ = ["Child", "DemoError", "port_free", "spawn", "stop_all", "wait_until"]

# Runs as `python -c LAUNCHER <demo pid> <argv...>`: arm the parent-death signal (Linux), make
# sure the demo did not die before that, then become the real command.
_LAUNCHER = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass  # not Linux: the session and stop_all still apply
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execv(sys.argv[2], sys.argv[2:])
"""


class DemoError(AuditStreamError):
    """The demo cannot go on (Kafka unreachable, a port taken, a child died); says what to do."""


@dataclass(eq=False)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_contains(self, needle: bytes) -> bool:
        try:
            return needle in self.log.read_bytes()
        except OSError:
            return False


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Child:
    """Start ``argv`` (``argv[0]`` an executable path) with its output in ``log`` (truncated)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, proc, log)


async def wait_until(
    child: Child, ready: Callable[[], Awaitable[bool]], within: float, what: str
) -> None:
    """Poll ``ready`` until it is true; ``DemoError`` with the log's tail if the child exits or
    ``within`` seconds pass first."""
    deadline = time.monotonic() + within
    while True:
        if not child.running:
            raise DemoError(
                f"the {child.name} exited (code {child.proc.returncode}) while starting; "
                f"last lines of {child.log}:\n{child.log_tail()}"
            )
        if await ready():
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"the {child.name} was not {what} after {within:.0f}s; "
                f"last lines of {child.log}:\n{child.log_tail()}"
            )
        await asyncio.sleep(0.2)


async def stop_all(children: Sequence[Child], grace: float = 40.0) -> None:
    """SIGTERM each child in the given order and wait for it; SIGKILL what outlives ``grace``
    seconds."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            # A process exit has no awaitable here (Popen, not asyncio's): poll it.
            while child.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if child.proc.poll() is None:
                child.proc.kill()
        child.proc.wait()


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (SO_REUSEADDR, like the servers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
