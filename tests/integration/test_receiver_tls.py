"""TLS and mutual TLS on both receiver ports, with certificates made by openssl for the test."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from audit_stream.config import TopicSettings
from tests.conftest import FIXTURES
from tests.support import cli, run_receiver, topic_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    for name, cn in (("server", "localhost"), ("client", "mesh-exporter")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={cn}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(d / f"{name}.pem"),
        )
    return d


def _post(url: str, body: bytes, ctx: ssl.SSLContext) -> int:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        return int(r.status)


def _logs_export(channel: grpc.Channel) -> logs_service_pb2.ExportLogsServiceResponse:
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        request_serializer=logs_service_pb2.ExportLogsServiceRequest.SerializeToString,
        response_deserializer=logs_service_pb2.ExportLogsServiceResponse.FromString,
    )
    return export(logs_service_pb2.ExportLogsServiceRequest(), timeout=20)


def test_tls_and_mtls_on_both_ports(
    pki: Path, kafka_bootstrap: str, topic_settings: TopicSettings, tmp_path: Path
) -> None:
    env = topic_env(kafka_bootstrap, topic_settings)
    assert cli(env, "topics", "create").returncode == 0
    body = (FIXTURES / "istio_default_als_log.json").read_bytes()
    ca = (pki / "ca.pem").read_bytes()
    tls = ("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))

    with run_receiver(
        env, tmp_path, wait_ready=False, extra_args=tls, scheme="https", ca=str(pki / "ca.pem")
    ) as rcv:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        assert _post(f"{rcv.http}/v1/logs", body, ctx) == 200
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the CA
            _post(f"{rcv.http}/v1/logs", body, ssl.create_default_context())
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
        with grpc.secure_channel(rcv.grpc.replace("127.0.0.1", "localhost"), creds) as ch:
            _logs_export(ch)

    mtls = (*tls, "--tls-client-ca", str(pki / "ca.pem"))
    with run_receiver(
        env,
        tmp_path,
        wait_ready=False,
        extra_args=mtls,
        scheme="https",
        ca=str(pki / "ca.pem"),
        client_cert=(str(pki / "client.pem"), str(pki / "client.key")),
    ) as rcv:
        with_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with_cert.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        assert _post(f"{rcv.http}/v1/logs", body, with_cert) == 200
        without_cert = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            _post(f"{rcv.http}/v1/logs", body, without_cert)
        target = rcv.grpc.replace("127.0.0.1", "localhost")
        good = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
        )
        with grpc.secure_channel(target, good) as ch:
            _logs_export(ch)
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca)) as ch:
            with pytest.raises(grpc.RpcError) as err:
                _logs_export(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake refused
