"""The user-facing files stay true: guides, docker-compose.yml, Dockerfile, .dockerignore.

* Every fenced ```yaml block in docs/*.md and README.md parses; every ```python block compiles.
* Every link from those files to another file of the repository resolves.
* Every ``AUDIT_STREAM_*`` name they (or the compose file and Dockerfile) mention is a variable the
  configuration understands (``audit_stream.config.KNOWN_ENV``).
* docker-compose.yml: ``docker compose config -q`` accepts it (skipped only when the compose CLI is
  missing); its structure is checked with PyYAML in any case; its commands parse with the real CLI
  parser and its environment builds valid settings.
* The examples in the guides are consistent with what the receiver understands: Istio labels and
  Envoy attributes map to audit fields, referenced providers / clusters / pipeline components exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from audit_stream.cli import _parser
from audit_stream.config import KNOWN_ENV, settings_from_env
from audit_stream.receiver.accesslog import fields_from_attributes
from audit_stream.retention import load_policy_file

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
MARKDOWN = [*DOCS, ROOT / "README.md"]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

GUIDES = [
    "istio.md",
    "envoy.md",
    "linkerd.md",
    "otel-collector.md",
    "consuming.md",
    "architecture.md",
]

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_ENV_NAME = re.compile(r"AUDIT_STREAM_[A-Z0-9_]*\*?")
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file, de-indented by their fence's indentation."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, start = len(m.group("indent")), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not _FENCE_CLOSE.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        assert i < len(lines), f"{path.relative_to(ROOT)}:{start + 1}: unclosed code fence"
        blocks.append(Block(path, start + 1, m.group("lang").lower(), "\n".join(body) + "\n"))
        i += 1
    return blocks


def blocks_of(lang: str, paths: list[Path] = MARKDOWN) -> list[Block]:
    return [b for p in paths for b in fenced_blocks(p) if b.lang == lang]


def yaml_docs(name: str) -> list[Any]:
    """Every YAML document of every yaml block in docs/<name>."""
    out: list[Any] = []
    for b in blocks_of("yaml", [ROOT / "docs" / name]):
        out.extend(d for d in yaml.safe_load_all(b.text) if d is not None)
    return out


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def interpolate_defaults(value: str) -> str:
    """What compose makes of ``${VAR:-default}`` with VAR unset."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


# -- guides exist and their snippets parse ------------------------------------------------------


@pytest.mark.parametrize("name", GUIDES)
def test_guide_exists_and_has_content(name: str) -> None:
    path = ROOT / "docs" / name
    assert path.is_file(), f"docs/{name} is missing"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), f"docs/{name} should start with a title"
    assert len(text) > 2000, f"docs/{name} looks like a stub ({len(text)} characters)"


YAML_BLOCKS = blocks_of("yaml") + blocks_of("yml")


def test_guides_contain_yaml_examples() -> None:
    with_yaml = {b.path.name for b in YAML_BLOCKS}
    for name in ["istio.md", "envoy.md", "linkerd.md", "otel-collector.md"]:
        assert name in with_yaml, f"docs/{name} has no ```yaml example"


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: b.where)
def test_yaml_snippet_parses(block: Block) -> None:
    try:
        docs = [d for d in yaml.safe_load_all(block.text) if d is not None]
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: YAML does not parse: {exc}")
    assert docs, f"{block.where}: empty YAML block"
    for d in docs:
        assert isinstance(d, dict | list), f"{block.where}: a document is a bare {type(d).__name__}"


PYTHON_BLOCKS = blocks_of("python")


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.where)
def test_python_snippet_compiles(block: Block) -> None:
    try:
        compile(block.text, block.where, "exec")
    except SyntaxError as exc:
        pytest.fail(f"{block.where}: {exc}")


def test_block_extraction_handles_indented_fences(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(
        "intro\n\n* item:\n\n  ```yaml\n  a:\n    b: 1\n  ```\n\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    blocks = fenced_blocks(md)
    assert [(b.lang, b.line) for b in blocks] == [("yaml", 5), ("python", 10)]
    assert yaml.safe_load(blocks[0].text) == {"a": {"b": 1}}


# -- links --------------------------------------------------------------------------------------


def _local_links(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    in_code = False
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if _FENCE_OPEN.match(line) or _FENCE_CLOSE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # URL, mailto:, in-page anchor
            out.append((n, target))
    return out


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_to_repository_files_resolve(path: Path) -> None:
    broken = []
    for line, target in _local_links(path):
        file_part = target.split("#", 1)[0]
        resolved = (path.parent / file_part).resolve()
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_guides_link_to_each_other() -> None:
    """The guides are reachable: each is linked from at least one other Markdown file."""
    linked = {
        (p.parent / t.split("#", 1)[0]).resolve() for p in MARKDOWN for _, t in _local_links(p)
    }
    for name in GUIDES:
        assert (ROOT / "docs" / name).resolve() in linked, f"nothing links to docs/{name}"


# -- environment variable names -----------------------------------------------------------------


def _env_names(text: str) -> set[str]:
    return set(_ENV_NAME.findall(text))


# Variables of the build and the scripts rather than of the running processes, and where each is read.
BUILD_ENV = {
    "AUDIT_STREAM_MYPYC": ("setup.py", "scripts/bootstrap-venv"),
    "AUDIT_STREAM_PURE": ("tests/conftest.py", "scripts/test"),
}


def test_build_variables_are_read_where_documented() -> None:
    for name, files in BUILD_ENV.items():
        for f in files:
            assert name in (ROOT / f).read_text(encoding="utf-8"), f"{f} does not read {name}"


def _unknown(names: set[str]) -> list[str]:
    bad = []
    for name in sorted(names - BUILD_ENV.keys()):
        if name.endswith("*") or name.endswith("_"):
            prefix = name.rstrip("*")
            if not any(k.startswith(prefix) for k in KNOWN_ENV):
                bad.append(name)
        elif name not in KNOWN_ENV:
            bad.append(name)
    return bad


@pytest.mark.parametrize(
    "path", [*MARKDOWN, COMPOSE, DOCKERFILE], ids=lambda p: str(p.relative_to(ROOT))
)
def test_mentioned_variables_exist(path: Path) -> None:
    names = _env_names(path.read_text(encoding="utf-8"))
    bad = _unknown(names)
    assert not bad, f"{path.relative_to(ROOT)} mentions unknown settings: {bad}"


def test_unknown_variable_is_caught() -> None:
    assert _unknown({"AUDIT_STREAM_KAFKA_BOOTSTRAP", "AUDIT_STREAM_TOPIC_*"}) == []
    assert _unknown({"AUDIT_STREAM_KAFKA_BOOSTRAP", "AUDIT_STREAM_NOPE_*"}) == [
        "AUDIT_STREAM_KAFKA_BOOSTRAP",
        "AUDIT_STREAM_NOPE_*",
    ]


# -- docker-compose.yml -------------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    """The compose command, or None when no compose CLI is installed."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            r = subprocess.run(
                [*cmd, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return cmd
    return None


def test_compose_config_is_accepted_by_docker_compose() -> None:
    cmd = _compose_cli()
    if cmd is None:
        pytest.skip("no compose CLI (`docker compose` or `docker-compose`) is installed")
    # Settings from the caller's shell must not change what is validated.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_STREAM_")}
    r = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, f"docker compose config rejected the file:\n{r.stderr}{r.stdout}"


def test_compose_services_and_dependencies() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) >= {"kafka", "topics", "receiver", "worker"}

    kafka = services["kafka"]
    assert str(kafka["image"]).startswith("apache/kafka:")
    kenv = kafka["environment"]
    assert "broker" in kenv["KAFKA_PROCESS_ROLES"] and "controller" in kenv["KAFKA_PROCESS_ROLES"]
    for internal in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert str(kenv[internal]) == "1", internal
    assert str(kenv.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")).lower() == "false"
    kafka_check = " ".join(kafka["healthcheck"]["test"])
    assert "kafka-broker-api-versions" in kafka_check or "/dev/tcp" in kafka_check
    assert kafka["restart"] == "unless-stopped"

    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(topics["restart"]).startswith("on-failure")

    for name in ("receiver", "worker"):
        svc = services[name]
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert svc["depends_on"]["topics"]["condition"] == "service_completed_successfully", name
        assert svc["restart"] == "unless-stopped", name
        assert "healthcheck" in svc, name

    receiver = services["receiver"]
    published = {str(p).rsplit(":", 1)[-1] for p in receiver["ports"]}
    assert {"4317", "4318"} <= published
    renv = receiver["environment"]
    assert renv["AUDIT_STREAM_GRPC_LISTEN"] == "0.0.0.0:4317"
    assert renv["AUDIT_STREAM_HTTP_LISTEN"] == "0.0.0.0:4318"
    probe = " ".join(receiver["healthcheck"]["test"])
    assert "/healthz" in probe and "4318" in probe

    worker = services["worker"]
    web_port = str(worker["environment"]["AUDIT_STREAM_WEB_PORT"])
    assert any(str(p).endswith(f":{web_port}") for p in worker["ports"])
    assert f":{web_port}/audit/" in " ".join(worker["healthcheck"]["test"])


def test_compose_healthchecks_use_known_durations() -> None:
    duration = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
    for name, svc in compose()["services"].items():
        for key in ("interval", "timeout", "start_period"):
            value = svc.get("healthcheck", {}).get(key)
            if value is not None:
                assert duration.match(str(value)), f"{name}.healthcheck.{key}: {value!r}"


def _app_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("audit-stream")
    }


def test_compose_commands_parse_with_the_cli() -> None:
    services = _app_services()
    assert set(services) == {"topics", "receiver", "worker"}
    parser = _parser()
    seen = set()
    for name, svc in services.items():
        command = [str(a) for a in svc["command"]]
        ns = parser.parse_args(command)  # argparse exits (fails the test) on an unknown command
        assert getattr(ns, "handler", None) is not None, f"{name}: {command} runs nothing"
        seen.add(ns.command)
    assert seen == {"topics", "receiver", "worker"}
    assert services["topics"]["command"] == ["topics", "create"]


def test_compose_environment_builds_valid_settings() -> None:
    for name, svc in _app_services().items():
        env = {k: interpolate_defaults(str(v)) for k, v in svc["environment"].items()}
        bad = _unknown({k for k in env if k.startswith("AUDIT_STREAM_")})
        assert not bad, f"{name}: unknown settings {bad}"
        settings = settings_from_env(env, read_file=lambda p: "")
        assert settings.kafka.bootstrap == "kafka:9092", name
        if name == "receiver":
            assert settings.receiver.grpc_listen.startswith("0.0.0.0:")
            assert settings.receiver.http_listen.startswith("0.0.0.0:")
        if name == "worker":
            assert settings.worker.retention_policy is not None


def test_compose_retention_policy_is_mounted_and_valid() -> None:
    for name in ("worker", "topics"):
        svc = compose()["services"][name]
        target = svc["environment"]["AUDIT_STREAM_RETENTION_POLICY"]
        mounts = [str(v).split(":") for v in svc.get("volumes", [])]
        sources = [m[0] for m in mounts if len(m) >= 2 and m[1] == target]
        assert sources, f"{name}: nothing is mounted at {target}"
        source = (ROOT / sources[0]).resolve()
        assert source == (ROOT / "config" / "retention-policy.example.yaml").resolve()
        policy = load_policy_file(str(source))
        tag = policy.tag(cast(Any, {"authorization": {"decision": "deny"}, "time_unix_nano": 0}))
        assert tag["class"] and isinstance(tag["days"], int), tag


def test_interpolation_defaults() -> None:
    assert interpolate_defaults("${AUDIT_STREAM_SIEM_FORMAT:-ocsf}") == "ocsf"
    assert interpolate_defaults("${AUDIT_STREAM_AUTH_TOKENS:-}") == ""
    assert interpolate_defaults("plain") == "plain"


# -- Dockerfile and .dockerignore ---------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_image() -> None:
    ins = _dockerfile_instructions()
    args = {r.split("=", 1)[0]: r.split("=", 1)[1] for w, r in ins if w == "ARG" and "=" in r}
    bases = [r.split()[0] for w, r in ins if w == "FROM"]
    resolved = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], b) for b in bases]
    assert resolved and all(b == "python:3.11-slim" for b in resolved), resolved
    assert len(bases) >= 2, "build and runtime stages keep build tooling out of the image"
    users = [r for w, r in ins if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert ("ENTRYPOINT", '["audit-stream"]') in ins
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^audit-stream = "audit_stream\.cli:main"$', pyproject, re.M)
    runs = " ".join(r for w, r in ins if w == "RUN")
    assert "pip install" in runs or "pip wheel" in runs
    # A compiler only in the build stage (the compiled build, setup.py); the runtime image
    # gets the built virtualenv and nothing that could build more.
    stages = " ".join(f"{w} {r}" for w, r in ins).split("FROM ")
    compiler = r"apt-get install[^&]*\b(gcc|build-essential)\b"
    assert re.search(compiler, stages[1]), "the build stage compiles the per-record modules"
    assert not re.search(compiler, stages[-1])
    assert "AUDIT_STREAM_MYPYC=1" in stages[1]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; `!` re-includes."""
    import fnmatch

    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        neg = raw.startswith("!")
        pat = raw[1:] if neg else raw
        pat = pat.strip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(p.split("/")[-1], pat[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatch(p, pat) for p in prefixes)
        if hit:
            ignored = not neg
    return ignored


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    copies = [r for w, r in _dockerfile_instructions() if w == "COPY" and "--from" not in r]
    sources = [s for r in copies for s in r.split()[:-1] if not s.startswith("--")]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
        assert not _ignored(src, patterns), f".dockerignore excludes {src}, which the build copies"
        if (ROOT / src).is_dir():
            module = next((ROOT / src).glob("*.py"))
            rel = str(module.relative_to(ROOT))
            assert not _ignored(rel, patterns), f".dockerignore excludes {rel}"
    for local_state in (".git/HEAD", ".venv/bin/python", ".run/kafka-9092/kafka.pid"):
        assert _ignored(local_state, patterns), f"{local_state} would be sent to the daemon"
    assert _ignored("audit_stream/__pycache__/cli.cpython-311.pyc", patterns)


# -- the examples agree with the receiver and with themselves ------------------------------------

_SAMPLE = "spiffe://cluster.local/ns/shop/sa/web"


def _maps_to_a_field(name: str) -> bool:
    return bool(fields_from_attributes({name: _SAMPLE})) or bool(
        fields_from_attributes({name: "200"})
    )


def test_istio_providers_and_labels() -> None:
    docs = yaml_docs("istio.md")
    providers: dict[str, dict[str, Any]] = {}
    for d in docs:
        mesh = d.get("spec", {}).get("meshConfig", {}) if isinstance(d, dict) else {}
        for p in mesh.get("extensionProviders", []):
            providers[p["name"]] = p
    als = [p for p in providers.values() if "envoyOtelAls" in p]
    tracing = [p for p in providers.values() if "opentelemetry" in p]
    assert als and tracing, "istio.md must declare an envoyOtelAls and an opentelemetry provider"
    for p in [*als, *tracing]:
        cfg = p.get("envoyOtelAls") or p["opentelemetry"]
        assert cfg["port"] == 4317 and cfg["service"].startswith("audit-stream-receiver.")

    labels = als[0]["envoyOtelAls"]["logFormat"]["labels"]
    assert labels["source.principal"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert labels["destination.principal"] == "%DOWNSTREAM_LOCAL_URI_SAN%"
    assert "%REQ(X-REQUEST-ID)%" in labels.values()
    assert any("jwt_authn" in v for v in labels.values())
    unmapped = [k for k in labels if not _maps_to_a_field(k)]
    assert not unmapped, f"labels the receiver ignores: {unmapped}"

    telemetry = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Telemetry"]
    assert telemetry
    used = {
        prov["name"]
        for t in telemetry
        for section in ("accessLogging", "tracing")
        for entry in t["spec"].get(section, [])
        for prov in entry.get("providers", [])
    }
    assert used == set(providers), f"Telemetry uses {used}, MeshConfig declares {set(providers)}"
    mesh_wide = [t for t in telemetry if t["metadata"]["namespace"] == "istio-system"]
    assert any("accessLogging" in t["spec"] and "tracing" in t["spec"] for t in mesh_wide)


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for v in node.values():
            found.extend(_walk(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_walk(v))
    return found


def test_envoy_example_is_consistent() -> None:
    (bootstrap,) = [d for d in yaml_docs("envoy.md") if "static_resources" in d]
    nodes = _walk(bootstrap)
    clusters = {c["name"] for c in bootstrap["static_resources"]["clusters"]}
    referenced = {n["cluster_name"] for n in nodes if "envoy_grpc" not in n and "cluster_name" in n}
    referenced |= {n["envoy_grpc"]["cluster_name"] for n in nodes if "envoy_grpc" in n}
    referenced |= {n["cluster"] for n in nodes if isinstance(n.get("cluster"), str)}  # routes
    assert referenced <= clusters, f"undefined clusters: {referenced - clusters}"
    names = {n.get("name") for n in nodes}
    assert {"envoy.access_loggers.open_telemetry", "envoy.tracers.opentelemetry"} <= names
    attributes = [
        kv["key"]
        for n in nodes
        if n.get("name") == "envoy.access_loggers.open_telemetry"
        for kv in n["typed_config"]["attributes"]["values"]
    ]
    assert attributes
    unmapped = [k for k in attributes if not _maps_to_a_field(k)]
    assert not unmapped, f"attributes the receiver ignores: {unmapped}"
    (audit,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == "audit_stream"]
    ports = {n["socket_address"]["port_value"] for n in _walk(audit) if "socket_address" in n}
    assert ports == {4317}
    assert "http2_protocol_options" in str(audit), "OTLP/gRPC needs HTTP/2 to the receiver"


def _check_collector(config: dict[str, Any], where: str) -> None:
    service = config.get("service", {})
    for kind in ("receivers", "processors", "exporters"):
        defined = set(config.get(kind, {}))
        for pname, pipeline in service.get("pipelines", {}).items():
            missing = set(pipeline.get(kind, [])) - defined
            assert not missing, f"{where}: pipeline {pname} uses undefined {kind} {missing}"
    missing_ext = set(service.get("extensions", [])) - set(config.get("extensions", {}))
    assert not missing_ext, f"{where}: undefined extensions {missing_ext}"
    for name, exporter in config.get("exporters", {}).items():
        if name.split("/")[0] == "otlp" and "audit-stream" in name:
            assert str(exporter["endpoint"]).endswith(":4317"), where
        if name.split("/")[0] == "otlphttp" and "audit-stream" in name:
            assert re.search(r":4318/?$", str(exporter["endpoint"])), where
        auth = exporter.get("auth", {}).get("authenticator")
        if auth:
            assert auth in config.get("extensions", {}), f"{where}: {auth} not defined"


def test_collector_examples_are_consistent() -> None:
    full = 0
    for name in ("otel-collector.md", "linkerd.md"):
        for block in blocks_of("yaml", [ROOT / "docs" / name]):
            doc = yaml.safe_load(block.text)
            if isinstance(doc, dict) and "receivers" in doc and "service" in doc:
                _check_collector(doc, block.where)
                full += 1
    assert full >= 2, "expected complete Collector configurations in the guides"


def test_collector_check_catches_an_undefined_exporter() -> None:
    bad = {
        "receivers": {"otlp": {}},
        "exporters": {},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "exporters": ["otlp/x"]}}},
    }
    with pytest.raises(AssertionError, match="undefined exporters"):
        _check_collector(bad, "test")
