"""The developer loop of skaffold.yaml, run by the real skaffold on the kind cluster: `skaffold build`
makes both images, `skaffold run -p kind` loads them into the node and deploys the chart, and
`skaffold dev` syncs an edited source file into the running predictor without restarting it.

Runs in skaffold.yaml's own namespace, removed again at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import ROOT, remove_release, run_job, wait_job
from tests.e2e.kube import Cluster, wait_for

pytestmark = pytest.mark.e2e

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
DEV = SKAFFOLD["deploy"]["helm"]["releases"][0]
RELEASE = f"app.kubernetes.io/instance={DEV['name']}"
PREDICTORS = f"{RELEASE},app.kubernetes.io/component=predictor"


class Skaffold:
    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster, self.workdir = cluster, workdir
        config = workdir / "skaffold-config.yaml"  # no update check or metrics: nothing is reachable
        config.write_text("global:\n  update-check: false\n  collect-metrics: false\n")
        path = f"{cluster.bin_dir}:{cluster.helm.parent}:{os.environ['PATH']}"
        self.env = {**cluster.env, "PATH": path, "BASE_IMAGE": "local", "SKAFFOLD_CONFIG": str(config)}
        self.env |= {"SKAFFOLD_INTERACTIVE": "false", "SKAFFOLD_UPDATE_CHECK": "false"}

    def args(self, command: str, *more: str) -> list[str]:
        return [str(self.cluster.bin_dir / "skaffold"), command, "-p", "kind,airgap", *more]

    def run(self, command: str, *more: str, timeout: float = 1500) -> str:
        proc = subprocess.run(
            self.args(command, *more), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, (
            f"skaffold {command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
        return proc.stdout


@pytest.fixture(scope="module")
def skaffold(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Skaffold]:
    remove_release(cluster, DEV["namespace"])
    yield Skaffold(cluster, tmp_path_factory.mktemp("skaffold"))
    remove_release(cluster, DEV["namespace"])


@pytest.fixture(scope="module")
def built(skaffold: Skaffold) -> Iterator[dict[str, str]]:
    out = skaffold.workdir / "build.json"
    skaffold.run("build", "--file-output", str(out))
    tags = {b["imageName"]: b["tag"] for b in json.loads(out.read_text())["builds"]}
    yield tags
    # Every run tags new images: without this they pile up until the disk is full.
    skaffold.cluster.run("docker", "rmi", *tags.values(), check=False)


def test_skaffold_build_makes_both_images(cluster: Cluster, built: dict[str, str]) -> None:
    assert set(built) == {a["image"] for a in SKAFFOLD["build"]["artifacts"]}
    for tag in built.values():
        owner = cluster.run("docker", "run", "--rm", "--entrypoint", "stat", tag, "-c", "%u", "/app")
        assert owner.strip() == "10001", f"{tag}: /app is not the server's user's, file sync would fail"


def _predictor_pods(cluster: Cluster) -> list[dict]:
    return cluster.json("-n", DEV["namespace"], "get", "pod", "-l", PREDICTORS)["items"]


def test_skaffold_run_deploys_the_chart_with_those_images(
    cluster: Cluster, skaffold: Skaffold, built: dict[str, str]
) -> None:
    # The release's MLflow starts empty: the predictors wait, not ready, while the chart's bootstrap
    # Job trains the first model, so no status check.
    skaffold.run("run", "--status-check=false")
    namespace, mlflow = DEV["namespace"], f"{RELEASE},app.kubernetes.io/component=mlflow"
    wait = ("-n", namespace, "wait", "--timeout=600s")
    cluster.kubectl(*wait, "--for=condition=Available", "deploy", "-l", mlflow, timeout=630)
    fullname = cluster.json("-n", namespace, "get", "httproute", "-l", RELEASE)["items"][0]["metadata"][
        "name"
    ]
    wait_job(cluster, f"{fullname}-bootstrap-1", timeout=900, namespace=namespace)
    cluster.kubectl(*wait, "--for=condition=Ready", "inferenceservice", "--all", timeout=630)
    images = {c["image"] for pod in _predictor_pods(cluster) for c in pod["spec"]["containers"]}
    assert built["fraud-detection/predictor"] in images, images
    in_node = cluster.run("docker", "exec", cluster.node, "ctr", "-n", "k8s.io", "images", "ls", "-q")
    assert all(tag.split("@")[0] in in_node for tag in built.values()), "images not loaded into the node"

    # Per-feature tensors to the champion's Service (replayed by the jobs image).
    champion = f"http://{fullname}-champion-predictor.{namespace}.svc"
    send = (
        "fraud data generate --rows 500 --seed 9 --out /tmp/transactions.csv"
        f" && fraud traffic send /tmp/transactions.csv --url {champion} --batch 50"
    )
    run_job(cluster, fullname, "traffic", send, namespace=namespace, cronjob="drift")


def _read_in_pod(cluster: Cluster, pod: str, path: str) -> str:
    return cluster.kubectl(
        "-n", DEV["namespace"], "exec", pod, "-c", "kserve-container", "--", "cat", path, check=False
    )


def _settled(cluster: Cluster) -> dict | None:
    """A predictor pod, once every predictor pod is ready and none is being replaced."""
    pods = _predictor_pods(cluster)
    ready = [
        p
        for p in pods
        if "deletionTimestamp" not in p["metadata"]
        and all(s.get("ready") for s in p["status"].get("containerStatuses") or [{}])
    ]
    services = cluster.json("-n", DEV["namespace"], "get", "inferenceservice")["items"]
    return ready[0] if len(ready) == len(pods) == len(services) else None


def _restarts(pod: dict) -> int:
    return sum(status["restartCount"] for status in pod["status"]["containerStatuses"])


def test_skaffold_dev_syncs_an_edited_file_into_the_running_predictor(
    cluster: Cluster, skaffold: Skaffold
) -> None:
    log = skaffold.workdir / "dev.log"
    with log.open("w") as out:
        dev = subprocess.Popen(
            skaffold.args("dev", "--cleanup=false", "--port-forward=off"),
            cwd=ROOT,
            env=skaffold.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    probe = ROOT / "model_server" / f"_sync_probe_{uuid.uuid4().hex[:8]}.py"
    try:

        def watching() -> bool:
            assert dev.poll() is None, f"skaffold dev exited:\n{log.read_text()[-3000:]}"
            return "Watching for changes" in log.read_text()

        wait_for("skaffold dev watching", watching, timeout=900)
        pod = wait_for(
            "the predictors settled after skaffold's deploy", lambda: _settled(cluster), timeout=600
        )
        name, restarts = pod["metadata"]["name"], _restarts(pod)
        marker = f"MARKER = {uuid.uuid4().hex!r}\n"
        probe.write_text(marker)
        in_pod = f"/app/model_server/{probe.name}"
        wait_for("the edit synced", lambda: marker in _read_in_pod(cluster, name, in_pod), timeout=120)
        probe.unlink()
        wait_for("the removal synced", lambda: marker not in _read_in_pod(cluster, name, in_pod), timeout=120)
        again = cluster.json("-n", DEV["namespace"], "get", "pod", name)
        assert (again["metadata"]["uid"], _restarts(again)) == (pod["metadata"]["uid"], restarts)
    finally:
        probe.unlink(missing_ok=True)
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
