"""Which build is running: the per-record modules compiled by mypyc (``setup.py``), or pure Python.

The receiver and the worker log it at start-up and export it as the ``native_modules`` gauge:
the compiled build costs ~8% (receiver) to ~20% (worker) less CPU per record, which matters when
sizing. A compiled module whose source was edited after the build would silently run the old
code, so those are reported too.

Example::

    >>> describe()  # doctest: +SKIP
    'compiled (15 of 15 per-record modules)'
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # setup.py reads this module on its own, before anything is installed
    from audit_stream.metrics import Registry

__all__ = ["NATIVE_MODULES", "announce", "compiled_modules", "describe", "stale_modules"]

# The modules setup.py compiles when AUDIT_STREAM_MYPYC=1 (it reads this list).
NATIVE_MODULES: tuple[str, ...] = (
    "audit_stream.receiver.accesslog",
    "audit_stream.receiver.decode",
    "audit_stream.receiver.ingest",
    "audit_stream.kafka.partitioner",
    "audit_stream.kafka.codec",
    "audit_stream.join.acks",
    "audit_stream.join.authz",
    "audit_stream.join.correlator",
    "audit_stream.join.event",
    "audit_stream.retention.policy",
    "audit_stream.siem.redact",
    "audit_stream.siem.ocsf",
    "audit_stream.siem.ecs",
    "audit_stream.siem.output",
    "audit_stream.pipeline",
)

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _loaded_from(name: str) -> str:
    # mypyc modules report a __file__ with the package path doubled; only its suffix is used here
    return str(getattr(importlib.import_module(name), "__file__", "") or "")


def compiled_modules() -> list[str]:
    """The modules of :data:`NATIVE_MODULES` that were loaded from an extension module."""
    return [name for name in NATIVE_MODULES if _loaded_from(name).endswith(_EXTENSIONS)]


def stale_modules() -> list[str]:
    """Compiled modules whose ``.py`` source is newer than the extension module, in a checkout
    (``scripts/build-native``). An installed wheel is never stale: it was built from the sources
    it ships, whatever time stamps the installer gave the files."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "setup.py")):
        return []
    stale = []
    for name in compiled_modules():
        base = os.path.join(root, *name.split("."))
        built = [base + suffix for suffix in _EXTENSIONS if os.path.isfile(base + suffix)]
        try:
            if built and os.stat(base + ".py").st_mtime > os.stat(built[0]).st_mtime:
                stale.append(name)
        except OSError:  # no source beside the extension: nothing to be stale against
            continue
    return stale


def describe() -> str:
    """``compiled (n of m per-record modules)``, or ``pure Python``."""
    n = len(compiled_modules())
    if n == 0:
        return "pure Python"
    return f"compiled ({n} of {len(NATIVE_MODULES)} per-record modules)"


def announce(metrics: Registry, log: logging.Logger) -> None:
    """Log the build at start-up, warn about stale extension modules, export ``native_modules``."""
    n = len(compiled_modules())
    metrics.gauge(
        "native_modules", "per-record modules running compiled (0: pure Python)", lambda: n
    )
    log.info("audit-stream build: %s", describe())
    stale = stale_modules()
    if stale:
        log.warning(
            "compiled modules older than their sources, running the old code: %s "
            "(run scripts/build-native)",
            ", ".join(stale),
        )
