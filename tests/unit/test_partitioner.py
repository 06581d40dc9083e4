import os
import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from audit_stream.kafka.partitioner import murmur2, partition_for


def _signed(x: int) -> int:
    return x - (1 << 32) if x >= 1 << 31 else x


# Vectors from Apache Kafka's UtilsTest.testMurmur2 (Java ints, signed).
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka_java(data: bytes, expected: int) -> None:
    assert _signed(murmur2(data)) == expected


def test_murmur2_matches_aiokafka_on_random_input() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        data = rnd.randbytes(rnd.randrange(0, 64))
        assert murmur2(data) == aiokafka_murmur2(data)


def test_partition_for_matches_aiokafka_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    for _ in range(500):
        key = os.urandom(16).hex().encode()
        for n in (1, 3, 6, 12, 100):
            assert partition_for(key, n) == DefaultPartitioner()(key, list(range(n)), [])
