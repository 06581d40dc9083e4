import pytest

from audit_stream.config import KafkaSettings, TopicSettings, settings_from_env
from audit_stream.errors import ConfigError


def test_defaults_are_valid() -> None:
    s = settings_from_env({})
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert (s.topics.spans, s.topics.logs) == ("mesh.spans", "mesh.logs")
    assert s.receiver.grpc_listen == "127.0.0.1:4317"
    assert s.worker.join.window_seconds > 0


def test_environment_and_overrides() -> None:
    s = settings_from_env(
        {
            "AUDIT_STREAM_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "AUDIT_STREAM_PARTITIONS": "12",
            "AUDIT_STREAM_JOIN_WINDOW_SECONDS": "5",
            "AUDIT_STREAM_SIEM_FORMAT": "ecs",
            "AUDIT_STREAM_AUTH_TOKENS": "a, b",
            "AUDIT_STREAM_KAFKA_COMPRESSION": "none",
        },
        overrides={"topics": {"partitions": 24}, "kafka": {"bootstrap": None}},
    )
    assert s.kafka.bootstrap == "k1:9092,k2:9092"
    assert s.topics.partitions == 24  # the flag wins
    assert s.worker.join.window_seconds == 5.0
    assert s.worker.siem_format == "ecs"
    assert s.kafka.compression == "none"
    assert s.receiver.auth_tokens == frozenset({"a", "b"})


def test_tokens_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "tokens"
    f.write_text("# comment\ns3cret\n\nother\n")
    s = settings_from_env({"AUDIT_STREAM_AUTH_TOKENS_FILE": str(f)})
    assert s.receiver.auth_tokens == frozenset({"s3cret", "other"})
    with pytest.raises(ConfigError, match="AUTH_TOKENS_FILE: cannot read"):
        settings_from_env({"AUDIT_STREAM_AUTH_TOKENS_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUDIT_STREAM_KAFKA_BOOTSTRAP": "no-port"}, "KAFKA_BOOTSTRAP: expected host:port"),
        ({"AUDIT_STREAM_PARTITIONS": "many"}, "PARTITIONS: expected an integer, got 'many'"),
        ({"AUDIT_STREAM_PARTITIONS": "0"}, "PARTITIONS: between 1 and 10000"),
        ({"AUDIT_STREAM_TOPIC_LOGS": "bad topic!"}, "TOPIC_LOGS: 'bad topic!' is not a valid"),
        ({"AUDIT_STREAM_TOPIC_LOGS": "mesh.spans"}, "topic names must all differ"),
        ({"AUDIT_STREAM_SIEM_FORMAT": "cef"}, "SIEM_FORMAT: ocsf, ecs or native"),
        ({"AUDIT_STREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM: required"),
        ({"AUDIT_STREAM_TLS_CERTFILE": "/x.pem"}, "needs both"),
        ({"AUDIT_STREAM_TOPIC_PER_CLASS": "perhaps"}, "expected true or false"),
        ({"AUDIT_STREAM_REDACT_PATTERNS": "(unclosed"}, "REDACT_PATTERNS"),
        ({"AUDIT_STREAM_JOIN_MAX_HOLD_SECONDS": "1"}, "JOIN_MAX_HOLD_SECONDS"),
        ({"AUDIT_STREAM_KAFKA_COMPRESSION": "brotli"}, "KAFKA_COMPRESSION: zstd, lz4, snappy"),
    ],
)
def test_bad_config_gives_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        settings_from_env(env)


def test_sasl_settings_pass_through_to_aiokafka() -> None:
    k = KafkaSettings(
        bootstrap="k:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="hunter2-secret",
    )
    kw = k.client_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_username"] == "u"
    assert "hunter2-secret" not in repr(k)  # secrets stay out of logs


def test_settings_are_frozen() -> None:
    t = TopicSettings()
    with pytest.raises(AttributeError):
        t.partitions = 3  # type: ignore[misc]


def test_compression_level_is_checked_against_the_codec() -> None:
    env = {"AUDIT_STREAM_KAFKA_COMPRESSION": "zstd", "AUDIT_STREAM_KAFKA_COMPRESSION_LEVEL": "-3"}
    assert settings_from_env(env).kafka.compression_level == -3
    assert settings_from_env({}).kafka.compression_level is None
    with pytest.raises(ConfigError, match="KAFKA_COMPRESSION_LEVEL: gzip levels are 1..9"):
        KafkaSettings(compression="gzip", compression_level=10)
    with pytest.raises(ConfigError, match="KAFKA_COMPRESSION_LEVEL: snappy has no levels"):
        KafkaSettings(compression="snappy", compression_level=1)
    with pytest.raises(ConfigError, match="KAFKA_COMPRESSION_LEVEL: expected an integer"):
        settings_from_env({"AUDIT_STREAM_KAFKA_COMPRESSION_LEVEL": "fast"})
