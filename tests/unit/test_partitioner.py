import os
import random

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from audit_stream.kafka.partitioner import murmur2, partition_for, partitions_for_hex_ids


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


def _hex_ids(rnd: random.Random, n: int) -> list[str]:
    return [rnd.randbytes(16).hex() for _ in range(n)]


@pytest.mark.parametrize("partitions", [1, 2, 3, 6, 7, 12, 64, 1000])
def test_partitions_for_hex_ids_matches_partition_for(partitions: int) -> None:
    rnd = random.Random(partitions)
    for n in (1, 2, 3, 17, 1000):
        ids = _hex_ids(rnd, n)
        assert partitions_for_hex_ids(ids, partitions) == [
            partition_for(i.encode(), partitions) for i in ids
        ]


def test_partitions_for_hex_ids_matches_aiokafka_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    rnd = random.Random(11)
    ids = _hex_ids(rnd, 5000)
    # lane edge cases: all-zero and all-0xff words, upper-case hex
    ids += ["0" * 32, "f" * 32, "F" * 32, "ffffffff" * 4, "00000000ffffffff" * 2]
    for n in (1, 6, 12, 100):
        expected = [DefaultPartitioner()(i.encode(), list(range(n)), []) for i in ids]
        assert partitions_for_hex_ids(ids, n) == expected


def test_partitions_for_hex_ids_other_lengths_and_text() -> None:
    rnd = random.Random(3)
    ids = _hex_ids(rnd, 50)
    odd = ["", "ab", "0000000000000000d269b633813fc60c0", "é" * 16, "é" * 32, "x" * 31]
    mixed = ids[:10] + odd + ids[10:]
    for n in (1, 6, 12):
        assert partitions_for_hex_ids(mixed, n) == [partition_for(i.encode(), n) for i in mixed]
    assert partitions_for_hex_ids([], 6) == []


def test_place_by_trace_id_hashes_traced_and_spreads_the_rest() -> None:
    import itertools

    from audit_stream.kafka.partitioner import place_by_trace_id

    ids = [os.urandom(16).hex() if i % 3 else None for i in range(30)]
    placed = place_by_trace_id(ids, 6, itertools.count())
    untraced = iter(range(100))
    assert placed == [
        partition_for(t.encode(), 6) if t is not None else next(untraced) % 6 for t in ids
    ]
