"""deploy/ checked offline: the Kubernetes kinds against the Kubernetes schemas
(kubernetes-validate), the KEDA ScaledObject against its schema, every tierq command line
against the CLI itself, and what the files promise (3 NATS nodes, 2 masters, drain times)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tierq.api.keda import Trigger
from tierq.cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "kubernetes"
SCALED_OBJECT_SCHEMA = json.loads((Path(__file__).parent / "scaledobject.schema.json").read_text())
#: The Kubernetes release whose schemas the manifests are checked against.
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def check(doc: dict[str, Any]) -> None:
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    "doc", [d for _, d in documents()], ids=[f"{n}:{d['kind']}" for n, d in documents()]
)
def test_every_manifest_is_valid(doc: dict[str, Any]) -> None:
    check(doc)


@pytest.mark.parametrize(
    ("kind", "break_it"),
    [
        ("StatefulSet", lambda d: d["spec"].update(replicas="three")),
        ("Deployment", lambda d: d["spec"]["template"]["spec"].update(restartPolicyy="Always")),
        ("ScaledObject", lambda d: d["spec"].update(maxReplicas=3)),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].update(targetSize=6)),
    ],
)
def test_the_checks_catch_a_broken_manifest(kind: str, break_it: Any) -> None:
    """A check that cannot fail is a defect: each kind of mistake is refused."""
    doc = next(iter(by_kind(kind).values()))
    broken = json.loads(json.dumps(doc))
    break_it(broken)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        check(broken)


def test_kustomization_lists_every_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_topology_is_the_one_promised() -> None:
    (nats,) = by_kind("StatefulSet").values()
    assert nats["spec"]["replicas"] == 3
    conf = by_kind("ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert "jetstream" in conf and conf.count("nats-route://") == 3
    assert 'include "auth.conf"' in conf
    deployments = by_kind("Deployment")
    assert deployments["tierq-master"]["spec"]["replicas"] == 2
    api = deployments["tierq-api"]["spec"]["template"]["spec"]["containers"][0]
    (token,) = [e for e in api["env"] if e["name"] == "TIERQ_API_TOKENS"]
    assert token["valueFrom"]["secretKeyRef"]["name"] in by_kind("Secret")


def test_the_scaled_object_scales_the_workers_on_the_apis_scaler() -> None:
    (scaled,) = by_kind("ScaledObject").values()
    target = by_kind("Deployment")[scaled["spec"]["scaleTargetRef"]["name"]]
    assert scaled["spec"]["minReplicaCount"] == 0  # to and from zero
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "external-push"
    metadata = dict(trigger["metadata"])
    host, port = metadata.pop("scalerAddress").split(":")
    service = by_kind("Service")[host.split(".")[0]]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    parsed = Trigger.parse(metadata)  # the API's own parser accepts the metadata
    worker = target["spec"]["template"]["spec"]["containers"][0]["args"]
    assert parsed.region == worker[worker.index("--region") + 1]
    # Kubernetes waits for the drain before it kills a scaled-down worker.
    grace = float(worker[worker.index("--drain-grace") + 1])
    assert target["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def parse_cli(argv: list[str]) -> click.Context:
    """Parse a `tierq …` command line with the CLI itself (options, choices, arguments)."""
    parent = click.Context(main, info_name="tierq")
    command = main.get_command(parent, argv[0])
    if command is None:
        raise click.UsageError(f"no command {argv[0]!r}")
    return command.make_context(argv[0], list(argv[1:]), parent=parent)


def tierq_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, doc in documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            if container["image"].startswith("tierq"):
                found.append((f"{name}:{container['name']}", container["args"]))
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image") != "tierq" or name == "credentials":
            continue
        command = service["command"]
        if service.get("entrypoint") == ["sh", "-c"]:  # "exec tierq …"
            words = shlex.split(re.sub(r"\$\$\{TIERQ_TASKS:-([^}]*)\}", r"\1", command[0]))
            command = words[words.index("tierq") + 1 :]
        found.append((f"compose:{name}", command))
    return found


@pytest.mark.parametrize(("where", "argv"), tierq_commands(), ids=[w for w, _ in tierq_commands()])
def test_every_tierq_command_line_parses(where: str, argv: list[str]) -> None:
    parse_cli(argv)


def test_a_bad_command_line_is_caught() -> None:
    with pytest.raises(click.UsageError):
        parse_cli(["autoscale", "--provider", "kubernetes", "m"])


def test_compose_gives_workers_time_to_drain_and_nats_its_users() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["autoscale"]["stop_grace_period"] == "45s"  # > the 30 s drain grace
    assert "nats-users" in services["credentials"]["command"][0]
    conf = (DEPLOY / "compose" / "nats.conf").read_text()
    assert 'include "auth.conf"' in conf and "jetstream" in conf
    assert "TIERQ_API_TOKENS" in services["api"]["environment"]


def test_the_dockerfile_installs_tierq_and_runs_it_unprivileged() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    root = DEPLOY.parent
    assert all((root / src).exists() for sources in copies for src in sources)
    assert "USER 10001" in lines
    assert 'ENTRYPOINT ["tierq"]' in lines


def systemd_units() -> list[tuple[str, dict[str, str]]]:
    """The systemd units docs/deploy.md shows: (unit file name, its settings)."""
    text = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    units = []
    for block in re.findall(r"```ini\n(.*?)```", text, re.S):
        name = re.search(r"/etc/systemd/system/(\S+)", block)
        assert name is not None, block[:80]
        settings: dict[str, str] = {}
        for line in block.replace("\\\n", " ").splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                settings[key.strip()] = value.strip()
        units.append((name.group(1), settings))
    return units


def test_the_guides_systemd_units_run_real_commands_and_let_workers_drain(
    tmp_path: Path,
) -> None:
    units = dict(systemd_units())
    assert {
        "tierq-master@.service",
        "tierq-region@.service",
        "tierq-worker@.service",
        "tierq-api.service",
    } <= units.keys()
    for name, unit in units.items():
        words = shlex.split(unit["ExecStart"])
        assert words[0].endswith("/tierq"), name
        argv = []
        for word in words[1:]:
            # systemd's %-specifiers stand for plain words; the files the options name must
            # exist for the CLI to take them: stand-ins under tmp_path.
            word = word.replace("%H-%i", "host-1").replace("%i", "eu")
            if word.startswith("/etc/tierq/"):
                stand_in = tmp_path / word.lstrip("/")
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.touch()
                word = str(stand_in)
            argv.append(word)
        parse_cli(argv)
        assert unit["User"] == "tierq" and unit["Restart"] == "on-failure", name
    worker = units["tierq-worker@.service"]
    # systemd must wait longer than a worker's drain (30 s by default) before its SIGKILL.
    assert float(worker["TimeoutStopSec"]) > 30
