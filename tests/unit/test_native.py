"""The build in use is what it claims: sources under AUDIT_STREAM_PURE=1, otherwise either pure
Python or every listed module compiled and up to date (scripts/build-native)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from audit_stream import native

ROOT = Path(__file__).resolve().parents[2]
PURE = os.environ.get("AUDIT_STREAM_PURE") == "1"


def test_listed_modules_exist() -> None:
    for name in native.NATIVE_MODULES:
        assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


@pytest.mark.skipif(not PURE, reason="only under AUDIT_STREAM_PURE=1")
def test_pure_run_imports_sources() -> None:
    assert native.compiled_modules() == []
    assert native.describe() == "pure Python"


@pytest.mark.skipif(PURE or not native.compiled_modules(), reason="needs the compiled build")
def test_compiled_build_is_whole_and_current() -> None:
    compiled = native.compiled_modules()
    assert compiled == list(native.NATIVE_MODULES), "a partial build: run scripts/build-native"
    assert native.stale_modules() == [], "sources edited after the build: scripts/build-native"
    n = len(native.NATIVE_MODULES)
    assert native.describe() == f"compiled ({n} of {n} per-record modules)"


def test_setup_reads_the_list_without_the_package_installed() -> None:
    """setup.py runs before anything is installed: native.py must load on the stdlib alone."""
    import subprocess
    import sys

    code = (
        "import runpy, sys; mods = runpy.run_path(sys.argv[1])['NATIVE_MODULES']; print(len(mods))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT / "audit_stream" / "native.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(native.NATIVE_MODULES)


@pytest.mark.skipif(PURE or not native.compiled_modules(), reason="needs the compiled build")
def test_a_source_edited_after_the_build_is_reported() -> None:
    name = native.NATIVE_MODULES[0]
    source = ROOT / (name.replace(".", "/") + ".py")
    before = source.stat()
    try:
        os.utime(source, (before.st_atime, time.time() + 3600))  # "edited" after the build
        assert native.stale_modules() == [name]
    finally:
        os.utime(source, (before.st_atime, before.st_mtime))
    assert native.stale_modules() == []
