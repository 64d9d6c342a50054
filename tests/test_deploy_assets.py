"""The deployment assets in ``deploy/``: every YAML parses, the compose file and the
Kubernetes manifests have the layout deploy/README.md describes and leave nothing open,
the core Kubernetes objects validate against the API schemas (``kubernetes-validate``),
and the Dockerfile runs as a non-root user with a health check.

No container runtime or cluster is here: the image is not built and nothing is applied.
KEDA's and kustomize's objects have no schema in that package: they get structural checks.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from prefect_lite.server.auth import OPEN_PATHS
from prefect_lite.settings import temporary_settings
from prefect_lite.storage import keys
from tests.helpers import REPO_ROOT, python_env

DEPLOY = REPO_ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
PREFECT_SERVICES = ("server", "scheduler", "worker", "remote-worker")
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "Kustomization"}
REQUIRED = "<required>"


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` -> default, ``${VAR:?message}`` -> REQUIRED."""

    def one(match: re.Match[str]) -> str:
        operator, rest = match.group(2), match.group(3)
        return rest if operator == ":-" else REQUIRED

    return re.sub(r"\$\{(\w+)(:-|:\?)([^}]*)\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def kube() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(KUBE.glob("*.yaml")):
        for doc in _load_all(path):
            name = doc.get("metadata", {}).get("name", path.name)
            assert (doc["kind"], name) not in found, f"{doc['kind']} {name} twice"
            found[(doc["kind"], name)] = doc
    return found


def test_every_yaml_file_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 6, files
    for path in files:
        docs = _load_all(path)
        assert docs and all(isinstance(doc, dict) for doc in docs), path


# -- docker compose
def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {name: _interpolate(str(value)) for name, value in env.items()}


def test_compose_has_redis_the_server_two_schedulers_workers_and_a_worker_profile(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"redis", *PREFECT_SERVICES}
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--requirepass" in redis_command
    assert _env(services["redis"])["REDIS_PASSWORD"] == REQUIRED
    assert services["server"]["command"][:2] == ["server", "start"]
    assert "--no-services" in services["server"]["command"]
    assert services["scheduler"]["command"] == ["scheduler", "start"]
    assert services["scheduler"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][:2] == ["worker", "start"]
    assert services["remote-worker"]["profiles"] == ["worker"]
    assert all("profiles" not in services[name] for name in ("redis", "server", "scheduler"))
    for name in PREFECT_SERVICES:
        assert services[name]["image"].startswith("${PREFECT_LITE_IMAGE")
    assert services["server"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["server"]["build"]["context"] / "deploy" / "Dockerfile").is_file()


def test_compose_every_service_needs_a_secret_and_nothing_listens_open(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert "ports" not in services["redis"]  # only the compose network reaches Redis
    server_env = _env(services["server"])
    assert server_env["PREFECT_LITE_API_KEYS"] == REQUIRED
    assert "PREFECT_LITE_API_KEY" not in server_env  # would be one more admin key
    for name in PREFECT_SERVICES:
        env = _env(services[name])
        url = env["PREFECT_LITE_REDIS_URL"]
        assert url == REQUIRED or url.startswith(f"redis://:{REQUIRED}@"), (name, url)
        assert env["PREFECT_LITE_RESULT_SIGNING_KEY"] == REQUIRED, name
        assert "PREFECT_LITE_API_KEYS" not in env or name == "server"
    for name, service in services.items():
        for port in service.get("ports", []):
            published = _interpolate(str(port))
            assert published.startswith("127.0.0.1:"), (name, published)


def test_compose_env_example_names_every_required_variable(compose: dict[str, Any]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (DEPLOY / "compose.env.example").read_text()
    assert required == {
        "REDIS_PASSWORD",
        "PREFECT_LITE_RESULT_SIGNING_KEY",
        "PREFECT_LITE_API_KEYS",
        "PREFECT_LITE_REDIS_URL",
    }
    for name in required:
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), name


# -- Kubernetes
def test_core_kubernetes_objects_validate_against_the_api_schemas(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    version = kubernetes_validate.latest_version()
    checked = []
    for (kind, _name), doc in kube.items():
        if kind in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.append(kind)
    assert sorted(checked) == ["Deployment", "Deployment", "Deployment", "Namespace", "Secret",
                               "Service"]  # fmt: skip
    # The validator catches a misspelt field (so the check above can fail).
    broken = copy.deepcopy(kube[("Deployment", "prefect-lite-server")])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def _pod(kube: dict[tuple[str, str], dict[str, Any]], component: str) -> dict[str, Any]:
    spec: dict[str, Any] = kube[("Deployment", f"prefect-lite-{component}")]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def _secret_refs(container: dict[str, Any]) -> set[str]:
    return {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_kubernetes_pods_run_non_root_with_probes_and_only_the_secrets_they_need(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    secret = kube[("Secret", "prefect-lite")]["stringData"]
    for component in ("server", "scheduler", "worker"):
        pod = _pod(kube, component)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        (container,) = pod["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "livenessProbe" in container
        refs = _secret_refs(container)
        assert refs <= set(secret), refs - set(secret)
        assert {"PREFECT_LITE_REDIS_URL", "PREFECT_LITE_RESULT_SIGNING_KEY"} <= refs
        assert ("PREFECT_LITE_API_KEYS" in refs) == (component == "server")
        assert "envFrom" not in container
    assert kube[("Deployment", "prefect-lite-scheduler")]["spec"]["replicas"] == 2


def test_the_server_is_probed_on_the_open_health_path_behind_its_service(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (container,) = _pod(kube, "server")["containers"]
    assert container["args"][:2] == ["server", "start"] and "0.0.0.0" in container["args"]
    port_names = {p["name"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/api/health" and check["port"] in port_names
    assert "/api/health" in OPEN_PATHS  # probes send no key
    service = kube[("Service", "prefect-lite-server")]["spec"]
    labels = kube[("Deployment", "prefect-lite-server")]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= port_names
    trusted = next(e for e in container["env"] if e["name"] == "PREFECT_LITE_SERVER_TRUSTED_HOSTS")
    assert "prefect-lite-server" in trusted["value"].split(",")


def test_keda_scales_the_workers_on_their_pool_queues_redis_list(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    (container,) = _pod(kube, "worker")["containers"]
    args = container["args"]
    pool = args[args.index("--pool") + 1]
    scaled = kube[("ScaledObject", "prefect-lite-worker")]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "prefect-lite-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    with temporary_settings(redis_prefix="pl"):  # the default prefix the manifests assume
        assert trigger["metadata"]["listName"] == keys.pool_queue_ready(pool, "default")
    assert int(trigger["metadata"]["listLength"]) > 0
    auth = kube[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["key"] in kube[("Secret", ref["name"])]["stringData"]


def test_kustomization_lists_every_manifest(kube: dict[tuple[str, str], dict[str, Any]]) -> None:
    listed = set(kube[("Kustomization", "kustomization.yaml")]["resources"])
    assert listed == {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}


# -- Dockerfile
def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_dockerfile_runs_non_root_with_a_health_check_and_copies_files_that_exist() -> None:
    instructions = _instructions(DEPLOY / "Dockerfile")
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    final = instructions[stages[-1] :]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert len(health) == 1 and "CMD" in health[0] and "prefect-lite-healthcheck" in health[0]
    assert ("ENTRYPOINT", '["prefect-lite"]') in final
    for word, rest in instructions:
        if word == "COPY" and "--from" not in rest:
            sources = [part for part in rest.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (REPO_ROOT / source).exists(), source
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for word, rest in instructions:
        if word == "COPY" and "--from" not in rest:
            for source in [p for p in rest.split() if not p.startswith("--")][:-1]:
                assert f"!{source.rstrip('/').removeprefix('./')}" in ignore, source


def test_the_health_check_script_pings_redis_and_never_starts_an_embedded_one(
    redis_url: str, tmp_path: Path
) -> None:
    if "server" in Path("/proc/1/cmdline").read_bytes().split(b"\0"):
        pytest.skip("process 1 here is a 'server': the script would probe HTTP")
    script = str(DEPLOY / "healthcheck.py")
    run = [sys.executable, script]
    healthy = subprocess.run(
        run, env=python_env({"PREFECT_LITE_REDIS_URL": redis_url}), capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert healthy.returncode == 0, healthy.stderr
    home = tmp_path / "health-home"
    env = {"PREFECT_LITE_REDIS_URL": None, "PREFECT_LITE_HOME": str(home)}
    unset = subprocess.run(
        run, env=python_env(env), capture_output=True, text=True, timeout=30, check=False
    )
    assert unset.returncode == 1 and "PREFECT_LITE_REDIS_URL is not set" in unset.stderr
    assert not home.exists()  # no embedded Redis was started
    down = subprocess.run(
        run, env=python_env({"PREFECT_LITE_REDIS_URL": "redis://127.0.0.1:1/0"}),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert down.returncode == 1 and down.stderr.startswith("unhealthy:")
    assert "Traceback" not in down.stderr
