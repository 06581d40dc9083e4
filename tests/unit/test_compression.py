"""Compression levels reach the record batches aiokafka builds (audit_stream.kafka.compression)."""

from collections.abc import Iterator

import aiokafka.record.default_records as py_records
import cramjam
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.producer.producer import AIOKafkaProducer

from audit_stream.kafka import compression
from audit_stream.kafka.compression import set_level

HEADER = 61  # bytes of a v2 record batch before its (compressed) records
MODULES = [py_records]
try:
    import aiokafka.record._crecords.default_records as c_records

    MODULES.append(c_records)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    """Binding is process-wide: give the other tests back what they had."""
    saved = [(m, n, getattr(m, n)) for m in MODULES for n in ("zstd_encode", "lz4_encode")]
    bound = dict(compression._bound)
    yield
    for m, n, f in saved:
        setattr(m, n, f)
    compression._bound.clear()
    compression._bound.update(bound)


def _batch(codec: str | None) -> bytes:
    builder = BatchBuilder(1 << 20, AIOKafkaProducer._COMPRESSORS[codec][1] if codec else 0)
    for i in range(200):  # access-log-like JSON: compressible, so levels differ
        value = b'{"method":"GET","path":"/api/v1/items/%d","response_code":%d}' % (i, 200 + i % 7)
        builder.append(key=b"%032x" % i, value=value, timestamp=1, headers=[])
    return bytes(builder._build())


def test_zstd_defaults_to_level_1_in_every_batch_builder() -> None:
    compression._bound.pop("zstd", None)
    set_level("zstd", None)
    raw = _batch(None)[HEADER:]
    built = _batch("zstd")[HEADER:]
    assert built == bytes(cramjam.zstd.compress(raw, level=1))
    assert built != bytes(cramjam.zstd.compress(raw, level=3))  # aiokafka's own level
    for module in MODULES:
        assert module.zstd_encode(raw) == built


def test_lz4_level_is_applied() -> None:
    compression._bound.pop("lz4", None)
    raw = _batch(None)[HEADER:]
    set_level("lz4", 1)
    fast = _batch("lz4")[HEADER:]
    c = cramjam.lz4.Compressor(level=1, content_checksum=False, block_linked=False)
    c.compress(raw)
    assert fast == bytes(c.finish())


def test_one_level_per_codec_per_process() -> None:
    compression._bound.pop("zstd", None)
    set_level("zstd", 2)
    set_level("zstd", 2)  # idempotent
    with pytest.raises(ValueError, match="already compressed at level 2"):
        set_level("zstd", None)  # the default, 1, differs
    with pytest.raises(ValueError, match="no compression level 23 for zstd"):
        set_level("zstd", 23)
    set_level("snappy", None)  # no levels: nothing to bind
    set_level("none", None)
