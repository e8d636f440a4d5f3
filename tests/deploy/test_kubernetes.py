"""deploy/kubernetes/: valid manifests whose probes, secrets and security settings fit the
launcher and the image."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.deploy_files import (
    KUBERNETES,
    dockerfile_values,
    kubernetes_documents,
    kubernetes_object,
    pod_containers,
)

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

# The oldest Kubernetes whose published schema accepts these manifests, and the newest known
# to kubernetes-validate (its default).
KUBERNETES_VERSIONS = ["1.29", None]
LONGEST_START_SECONDS = 30 + 600  # the launcher's --db-wait plus --migration-timeout


def deployment() -> dict:
    return kubernetes_object("deployment.yaml", "Deployment")


def job() -> dict:
    return kubernetes_object("migrate-job.yaml", "Job")


def web_container() -> dict:
    [container] = pod_containers(deployment())
    return container


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container.get("env", [])}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS, ids=lambda v: v or "latest")
def test_manifests_match_the_kubernetes_schema(version: str | None) -> None:
    """kubernetes-validate --strict accepts every manifest: no unknown or misplaced field."""
    files = sorted(str(path) for path in KUBERNETES.glob("*.yaml"))
    assert len(files) == 2
    version_args = ["--kubernetes-version", version] if version else []
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *version_args, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == 3  # Deployment, Service, Job


def test_probes_use_readyz_for_readiness_and_healthz_for_liveness() -> None:
    """Readiness: /readyz (database up, schema at head). Liveness: /healthz (never the
    database). A startup probe holds liveness off for as long as a start may take."""
    container = web_container()
    port_names = {port["name"] for port in container["ports"]}
    probes = {kind: container[kind] for kind in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["httpGet"]["port"] in port_names
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > LONGEST_START_SECONDS


def test_database_url_comes_from_a_secret_and_migrations_are_not_skipped() -> None:
    """DATABASE_URL is a secretKeyRef in both the Deployment and the Job (the same Secret);
    the Deployment does not set SKIP_MIGRATIONS."""
    web_env = env_of(web_container())
    [migrate] = pod_containers(job())
    web_secret = web_env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    job_secret = env_of(migrate)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert web_secret == job_secret and web_secret["name"] and web_secret["key"]
    assert "value" not in web_env["DATABASE_URL"]
    assert "SKIP_MIGRATIONS" not in web_env


def test_the_pod_listens_where_probes_and_the_service_look() -> None:
    """HOST=0.0.0.0, PORT is the containerPort, and the Service selects these pods on it."""
    container = web_container()
    web_env = env_of(container)
    [port] = container["ports"]
    assert web_env["HOST"]["value"] == "0.0.0.0"
    assert web_env["PORT"]["value"] == str(port["containerPort"])
    service = kubernetes_object("deployment.yaml", "Service")
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment()["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]


@pytest.mark.parametrize("workload", ["Deployment", "Job"])
def test_pods_run_unprivileged_with_a_read_only_root(workload: str) -> None:
    """runAsNonRoot with the image's uid, a read-only root file system, no privilege
    escalation, no capabilities, and resource requests and a memory limit."""
    obj = deployment() if workload == "Deployment" else job()
    pod = obj["spec"]["template"]["spec"]
    image_uid = dockerfile_values("USER")[-1].split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image_uid
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]


def test_termination_grace_covers_a_clean_stop() -> None:
    """terminationGracePeriodSeconds outlasts the preStop pause plus the launcher's 5 s grace
    for the migration child, so Kubernetes does not SIGKILL a clean shutdown."""
    pod = deployment()["spec"]["template"]["spec"]
    pre_stop = web_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[:2] == ["python", "-c"]  # no shell in the image's PATH is assumed
    pause = float(pre_stop[2].rsplit("sleep(", 1)[1].rstrip(")"))
    assert pod["terminationGracePeriodSeconds"] > pause + 5
    assert job()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 5


def test_migrate_job_runs_the_migrate_command_once() -> None:
    """The Job runs `supervisor.py migrate`, retries little, never restarts in place, and its
    deadline outlasts the database wait plus the migration timeout."""
    spec = job()["spec"]
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["/srv/app/supervisor.py", "migrate"]
    assert spec["backoffLimit"] <= 2
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] > LONGEST_START_SECONDS
    [rule] = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [78]


def test_every_document_is_one_of_the_expected_objects() -> None:
    """deployment.yaml holds a Deployment and its Service; migrate-job.yaml one Job."""
    kinds = {
        name: [d["kind"] for d in kubernetes_documents(name)]
        for name in ("deployment.yaml", "migrate-job.yaml")
    }
    assert kinds == {"deployment.yaml": ["Deployment", "Service"], "migrate-job.yaml": ["Job"]}
