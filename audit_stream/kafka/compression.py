"""Compression levels for the record batches aiokafka builds.

Kafka producers choose a level per codec since KIP-390 (``compression.zstd.level`` and friends;
librdkafka's ``compression.level``); aiokafka has no such option and always compresses zstd at
level 3, lz4 at 9 (high-compression mode) and gzip at 9. Its batch builders (the Cython one and
the pure-Python fallback) call the codec functions they imported at module level, so binding a
level means replacing those two module globals with the same function and a fixed level.

The level is therefore process-wide: every aiokafka producer of the process (ours, and Faust's
own) compresses that codec at that level. A process has one :class:`~audit_stream.config.
KafkaSettings`, so this is the scope the setting has anyway; asking for two different levels of
one codec in one process is a programming error and raises.

Why zstd defaults to level 1 (``DEFAULT_LEVELS``): on packed mesh records and on SIEM records it
compresses as well as level 3 or better (110 against 115 bytes per access-log record in 400-record
batches, 123-130 against 124-133 per OCSF record in batches of 100-300) for 18-47% less CPU,
and the receiver and the worker spend several percent of their time compressing. Any level
decompresses alike, so consumers are unaffected.

Example::

    >>> set_level("zstd", 1)   # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

import aiokafka.codec
import aiokafka.record.default_records as _py_records

from audit_stream.config import COMPRESSION_LEVELS

__all__ = ["DEFAULT_LEVELS", "effective_level", "set_level"]

try:  # the Cython batch builder, used whenever aiokafka's extensions are installed
    import aiokafka.record._crecords.default_records as _c_records
except ImportError:  # pragma: no cover - aiokafka without its extensions
    _c_records = None

# audit-stream's choice where aiokafka's fixed level is not the best one for these records
DEFAULT_LEVELS: Final[dict[str, int]] = {"zstd": 1}

_ENCODERS: Final[dict[str, tuple[str, Callable[..., bytes], str]]] = {
    # codec -> (name in the batch-builder modules, aiokafka's encoder, its level keyword)
    "zstd": ("zstd_encode", aiokafka.codec.zstd_encode, "level"),
    "lz4": ("lz4_encode", aiokafka.codec.lz4_encode, "level"),
    "gzip": ("gzip_encode", aiokafka.codec.gzip_encode, "compresslevel"),
}
_bound: dict[str, int] = {}  # codec -> level bound in this process


def effective_level(codec: str, level: int | None) -> int | None:
    """The level ``codec`` will use: ``level``, else audit-stream's default, else ``None``
    (aiokafka's own level)."""
    return level if level is not None else DEFAULT_LEVELS.get(codec)


def set_level(codec: str, level: int | None) -> None:
    """Make this process's aiokafka batch builders compress ``codec`` at ``level``.

    ``None`` means :data:`DEFAULT_LEVELS`' choice, or aiokafka's own level where there is none.
    Idempotent for the same level; raises ``ValueError`` for a level outside the codec's range
    (:data:`~audit_stream.config.COMPRESSION_LEVELS`), or a different level of a codec already
    bound in this process.
    """
    level = effective_level(codec, level)
    if level is None:
        return
    lo, hi = COMPRESSION_LEVELS.get(codec, (0, -1))
    if not lo <= level <= hi:
        raise ValueError(f"no compression level {level} for {codec}")
    bound = _bound.get(codec)
    if bound is not None:
        if bound != level:
            raise ValueError(f"{codec} is already compressed at level {bound} in this process")
        return
    name, encode, keyword = _ENCODERS[codec]
    bound_encode = functools.partial(encode, **{keyword: level})
    for module in (_py_records, _c_records):
        if module is not None:
            setattr(module, name, bound_encode)
    _bound[codec] = level
