"""deploy/kubernetes: the kustomize base is complete, schema-valid and consistent with the gateway.

Each manifest is validated offline against the Kubernetes OpenAPI-derived JSON schemas bundled with
kubernetes-validate, in strict mode (unknown fields are errors), for the oldest and the newest Kubernetes
versions we claim. The references between resources (selectors, names, ports, the generated ConfigMap, the
Secret's keys) are checked the way the API server and kubelet would resolve them, and the gateway itself
checks the Kubernetes gateway.yaml (`mcp-gateway check`), with the Secret's files supplied in a temp dir.
"""

from __future__ import annotations

import copy
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import GATEWAY, REPO, gateway_env, require_binaries

KUBE_DIR = REPO / "deploy" / "kubernetes"
KUSTOMIZATION = KUBE_DIR / "kustomization.yaml"
# The oldest Kubernetes minor still supported upstream when this was written, and the newest bundled.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version() + ".0")
SECRET_DIR = "/run/secrets/mcp-gateway/"
APP_LABELS = {"app.kubernetes.io/name": "mcp-gateway", "app.kubernetes.io/component": "gateway"}

pytestmark = pytest.mark.timeout(120)


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBE_DIR / name).read_text()) if doc is not None]


def resources() -> dict[str, dict[str, Any]]:
    """Every resource of the base by kind (each kind appears once in this base)."""
    by_kind: dict[str, dict[str, Any]] = {}
    for name in kustomization()["resources"]:
        for doc in documents(name):
            assert doc["kind"] not in by_kind, f"{name}: a second {doc['kind']}"
            by_kind[doc["kind"]] = doc
    return by_kind


def generated_configmaps() -> list[dict[str, Any]]:
    """The ConfigMaps kustomize's configMapGenerator makes (before it appends the content hash)."""
    out = []
    for generator in kustomization().get("configMapGenerator", []):
        data = {}
        for entry in generator.get("files", []):
            key, separator, path = entry.partition("=")  # `key=path`, or a path whose file name is the key
            if not separator:
                key, path = Path(entry).name, entry
            data[key] = (KUBE_DIR / path).read_text()
        out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    return out


def gateway_config_path() -> Path:
    (generator,) = kustomization()["configMapGenerator"]
    (entry,) = generator["files"]
    return KUBE_DIR / entry.rpartition("=")[2]


def validate(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        total += float(number) * units[unit]
    assert total > 0, f"cannot read the duration {text!r}"
    return total


def gateway_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


# ---------------------------------------------------------------------------
# The kustomization names every file, and every file it names exists
# ---------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_each_exists() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    listed = list(k["resources"])
    assert len(listed) == len(set(listed)), f"a resource is listed twice: {listed}"
    generated = {entry.rpartition("=")[2] for g in k.get("configMapGenerator", []) for entry in g["files"]}
    for name in listed + sorted(generated):
        assert (KUBE_DIR / name).is_file(), f"kustomization.yaml names {name}, which does not exist in {KUBE_DIR}"
    on_disk = {p.relative_to(KUBE_DIR).as_posix() for p in KUBE_DIR.rglob("*") if p.is_file()}
    unaccounted = on_disk - set(listed) - generated - {"kustomization.yaml"}
    assert not unaccounted, f"files in deploy/kubernetes that kustomization.yaml does not use: {sorted(unaccounted)}"
    kinds = set(resources())
    expected = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret", "Ingress", "NetworkPolicy", "ServiceAccount"}
    assert expected <= kinds, f"missing kinds: {sorted(expected - kinds)}"


# ---------------------------------------------------------------------------
# Schema validation (strict: an unknown or misplaced field is an error)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(version: str) -> None:
    checked = []
    for name in kustomization()["resources"]:
        for doc in documents(name):
            try:
                validate(doc, version)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {version}: "
                            f"{'.'.join(str(p) for p in error.path)}: {error.message}")
            checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
    for configmap in generated_configmaps():
        validate(configmap, version)
        checked.append(f"ConfigMap/{configmap['metadata']['name']}")
    assert len(checked) >= 9, checked


def test_the_validator_rejects_a_misspelt_field() -> None:
    """The schema check is strict: a typo in a manifest would not pass unnoticed."""
    deployment = copy.deepcopy(resources()["Deployment"])
    container = gateway_container(deployment)
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        validate(deployment, KUBERNETES_VERSIONS[-1])
    assert "readinesProbe" in str(caught.value.message)
    deployment = copy.deepcopy(resources()["Deployment"])
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment, KUBERNETES_VERSIONS[-1])


def test_the_commented_sessions_metric_example_in_the_hpa_is_valid() -> None:
    """hpa.yaml carries a commented Pods-metric item on mcp_sessions_active: uncommented, it must be valid."""
    lines = (KUBE_DIR / "hpa.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# - type: Pods")
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#"):
            break
        block.append(line.replace("# ", "", 1))
    item = yaml.safe_load("\n".join(block))
    assert item[0]["pods"]["metric"]["name"] == "mcp_sessions_active", item
    hpa = copy.deepcopy(resources()["HorizontalPodAutoscaler"])
    hpa["spec"]["metrics"] += item
    for version in KUBERNETES_VERSIONS:
        validate(hpa, version)


# ---------------------------------------------------------------------------
# References between resources resolve
# ---------------------------------------------------------------------------


def test_selectors_names_and_ports_agree() -> None:
    r = resources()
    deployment, service = r["Deployment"], r["Service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the Deployment's selector does not match its own pods"
    assert selector == APP_LABELS
    assert deployment["spec"]["replicas"] >= 2
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects no gateway pod"
    assert r["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert r["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    target = r["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert r["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    cpu = [m for m in r["HorizontalPodAutoscaler"]["spec"]["metrics"] if m["type"] == "Resource"]
    assert cpu and cpu[0]["resource"]["name"] == "cpu" and cpu[0]["resource"]["target"]["averageUtilization"] == 70

    container = gateway_container(deployment)
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8080}
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in port_names
    backend = r["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"] and backend["port"]["name"] in service_ports
    for rule in r["NetworkPolicy"]["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in port_names or port["port"] in port_names.values()
    pod_spec = deployment["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == r["ServiceAccount"]["metadata"]["name"]


def test_config_and_secret_volumes_resolve_to_the_generated_configmap_and_the_secret() -> None:
    r = resources()
    pod_spec = r["Deployment"]["spec"]["template"]["spec"]
    container = gateway_container(r["Deployment"])
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["mountPath"].rstrip("/"): m for m in container["volumeMounts"]}

    (configmap,) = generated_configmaps()
    config_mount = mounts["/etc/mcp-gateway"]
    assert volumes[config_mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    config_arg = container["args"][container["args"].index("--config") + 1]
    assert config_arg == "/etc/mcp-gateway/" + next(iter(configmap["data"])), "--config names a file the ConfigMap lacks"

    secret = r["Secret"]
    secret_mount = mounts[SECRET_DIR.rstrip("/")]
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
    referenced = re.findall(re.escape("${file:" + SECRET_DIR) + r"([^}]+)\}", gateway_config_path().read_text())
    assert referenced, "the Kubernetes gateway.yaml reads no session key from the Secret"
    assert set(referenced) <= set(secret["stringData"]), f"gateway.yaml reads {referenced}; the Secret has {sorted(secret['stringData'])}"


def test_pods_are_locked_down_and_match_the_image_user() -> None:
    deployment = resources()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    dockerfile_user = re.search(r"^USER (\d+)(?::(\d+))?$", (REPO / "Dockerfile").read_text(), re.M)
    assert dockerfile_user, "the Dockerfile sets no numeric USER"
    assert pod["securityContext"]["runAsUser"] == int(dockerfile_user.group(1))
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind} needs cpu and memory"
    probes = {name: container[name]["httpGet"]["path"] for name in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes == {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}


def test_ingress_keeps_sse_streams_unbuffered_and_open() -> None:
    annotations = resources()["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    keepalive = duration_seconds(yaml.safe_load(gateway_config_path().read_text())["server"]["sse_keepalive"])
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        timeout = int(annotations[f"nginx.ingress.kubernetes.io/{key}"])
        assert timeout >= 10 * keepalive, f"{key} {timeout}s would cut SSE streams idle between keep-alives"


# ---------------------------------------------------------------------------
# Shutdown timing: Kubernetes waits longer than the gateway's drain
# ---------------------------------------------------------------------------


def test_termination_grace_covers_prestop_and_shutdown_grace() -> None:
    deployment = resources()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    container = gateway_container(deployment)
    config = yaml.safe_load(gateway_config_path().read_text())
    shutdown_grace = duration_seconds(config["server"]["shutdown_grace"])
    pre_stop = container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        pre_stop_seconds = float(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert Path(command[0]).name == "sleep", f"preStop should wait for the endpoints to update: {command}"
        pre_stop_seconds = float(command[1])
    assert pre_stop_seconds >= 3, "too short for endpoint removal to reach kube-proxy and the Ingress"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > shutdown_grace, f"terminationGracePeriodSeconds {grace} <= server.shutdown_grace {shutdown_grace}"
    assert grace > pre_stop_seconds + shutdown_grace, (
        f"terminationGracePeriodSeconds {grace} does not cover preStop {pre_stop_seconds}s + shutdown_grace {shutdown_grace}s"
    )


# ---------------------------------------------------------------------------
# The gateway accepts its Kubernetes configuration
# ---------------------------------------------------------------------------


def check_with_secret_dir(tmp_path: Path, keys: dict[str, str]) -> subprocess.CompletedProcess:
    """`mcp-gateway check` on the Kubernetes gateway.yaml, with the Secret's mount point replaced by a temp dir
    holding `keys` (the file names the Secret's keys become in the volume)."""
    require_binaries()
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir(exist_ok=True)
    for name, value in keys.items():
        (secret_dir / name).write_text(value + "\n")
    text = gateway_config_path().read_text()
    assert SECRET_DIR in text
    config = tmp_path / "gateway.yaml"
    config.write_text(text.replace(SECRET_DIR, f"{secret_dir}/"))
    return subprocess.run(
        [str(GATEWAY), "check", "--config", str(config)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        env=gateway_env({"EXAMPLE_SERVER": "/usr/local/bin/mcp-example-server"}),
    )


def test_gateway_accepts_the_kubernetes_config_with_real_keys(tmp_path: Path) -> None:
    secret = resources()["Secret"]
    keys = {name: secrets.token_hex(32) for name in secret["stringData"]}
    result = check_with_secret_dir(tmp_path, keys)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ok: 2 backend(s)" in out, out
    for value in keys.values():
        assert value not in out, "check printed a session key"


def test_gateway_refuses_the_placeholder_secret_without_echoing_it(tmp_path: Path) -> None:
    """The committed Secret's placeholders are not keys: a pod started with them exits 2 naming the key path."""
    secret = resources()["Secret"]
    result = check_with_secret_dir(tmp_path, dict(secret["stringData"]))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "sessions.keys[0]" in out and "32-byte key" in out, out
    for value in secret["stringData"].values():
        assert value not in out, "check printed the secret's value"
