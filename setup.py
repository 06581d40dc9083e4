"""Optional native build: with ``AUDIT_STREAM_MYPYC=1`` the per-record modules are compiled to C
extension modules with mypyc (the compiler that ships with mypy), as black and mypy do.

The receiver and the worker spend most of their CPU in a few pure modules (access-log parsing,
OTLP decoding, the join, redaction, SIEM mapping). Compiled, the same code takes ~8% (receiver)
to ~20% (worker) less CPU per record (bench/README.md) and behaves the same; the test suite runs
against the compiled build (``scripts/build-native``, run by ``scripts/bootstrap-venv``). Without
the variable nothing is compiled and the package is pure Python.

Everything else (servers, Faust wiring, CLI, tools) stays interpreted: it runs per request or per
batch, not per record.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

_HERE = os.path.dirname(os.path.abspath(__file__))
# Pure, fully typed modules on the per-record paths, listed in audit_stream/native.py (read
# without importing the package, which needs the dependencies).
NATIVE_MODULES = [
    name.replace(".", "/") + ".py"
    for name in runpy.run_path(os.path.join(_HERE, "audit_stream", "native.py"))["NATIVE_MODULES"]
]


def _ext_modules() -> list[object]:
    if os.environ.get("AUDIT_STREAM_MYPYC", "") != "1":
        return []
    from mypyc.build import mypycify

    # mypy reads [tool.mypy] from pyproject.toml, whose per-module sections name modules outside
    # this subset. The shared runtime library goes inside the package
    # (audit_stream/native__mypyc.*.so), where an editable install finds it too.
    modules = mypycify(
        ["--no-warn-unused-configs", *NATIVE_MODULES],
        opt_level="3",
        group_name="audit_stream.native",
    )
    return list(modules)


setup(ext_modules=_ext_modules())
