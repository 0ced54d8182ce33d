"""A throwaway Kubernetes control plane for tests: etcd + kube-apiserver on loopback.

No scheduler, controllers or kubelet: objects are stored, validated (OpenAPI/CRD schemas,
fieldValidation=Strict), admitted (Pod Security, RBAC) and patched exactly as on a real cluster,
but no pod ever runs.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.support import free_port

API_SERVER_START_TIMEOUT = 90.0


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path) -> None:
    """A CA, an apiserver serving certificate for 127.0.0.1, and a service-account key pair."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=fraud-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=d,
    )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair and an admin kubeconfig for it."""

    url: str
    kubeconfig: Path
    ca_file: Path
    admin_token: str
    workdir: Path
    processes: list[subprocess.Popen]

    def kubeconfig_for_token(self, token: str, path: Path, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump(_kubeconfig(self.url, self.ca_file, token, namespace)))
        return path

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()


def _kubeconfig(url: str, ca_file: Path, token: str, namespace: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "test", "user": {"token": token}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}
        ],
        "current-context": "test",
    }


def _wait_ready(url: str, token: str, ca_file: Path, procs: list[subprocess.Popen], logs: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + API_SERVER_START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}; logs in {logs}")
        req = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = str(e)
        time.sleep(0.5)
    raise RuntimeError(
        f"kube-apiserver not ready after {API_SERVER_START_TIMEOUT:.0f}s ({last}); logs in {logs}"
    )


def start(bin_dir: Path, workdir: Path) -> ControlPlane:
    """Start etcd and kube-apiserver from `bin_dir`, with all state under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "pki"
    certs.mkdir()
    make_certificates(certs)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    procs: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}
    with (workdir / "etcd.log").open("wb") as etcd_log:
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "etcd"),
                    "--data-dir",
                    str(workdir / "etcd"),
                    "--name",
                    "test",
                    "--listen-client-urls",
                    etcd_url,
                    "--advertise-client-urls",
                    etcd_url,
                    "--listen-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-advertise-peer-urls",
                    f"http://127.0.0.1:{peer_port}",
                    "--initial-cluster",
                    f"test=http://127.0.0.1:{peer_port}",
                    "--unsafe-no-fsync",
                    "--log-level",
                    "warn",
                ],
                stdout=etcd_log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    with (workdir / "kube-apiserver.log").open("wb") as api_log:
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "kube-apiserver"),
                    "--etcd-servers",
                    etcd_url,
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                    "--secure-port",
                    str(api_port),
                    "--tls-cert-file",
                    str(certs / "server.crt"),
                    "--tls-private-key-file",
                    str(certs / "server.key"),
                    "--client-ca-file",
                    str(certs / "ca.crt"),
                    "--token-auth-file",
                    str(workdir / "tokens.csv"),
                    "--authorization-mode",
                    "RBAC",
                    "--service-account-issuer",
                    "https://kubernetes.default.svc",
                    "--service-account-key-file",
                    str(certs / "sa.pub"),
                    "--service-account-signing-key-file",
                    str(certs / "sa.key"),
                    "--service-cluster-ip-range",
                    "10.96.0.0/16",
                    "--enable-admission-plugins",
                    "PodSecurity,NamespaceLifecycle,ServiceAccount",
                    "--cert-dir",
                    str(workdir / "apiserver-certs"),
                    "--v",
                    "1",
                ],
                stdout=api_log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
    url = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        url=url,
        kubeconfig=workdir / "kubeconfig",
        ca_file=certs / "ca.crt",
        admin_token=token,
        workdir=workdir,
        processes=procs,
    )
    try:
        _wait_ready(url, token, certs / "ca.crt", procs, workdir)
    except Exception:
        plane.stop()
        raise
    plane.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(url, plane.ca_file, token, "default")))
    return plane


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` as the string it is (YAML 1.1 calls it a `value` tag)."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_yaml_dir(path: Path) -> list[dict]:
    docs: list[dict] = []
    for f in sorted(path.glob("*.yaml")):
        docs.extend(d for d in yaml.load_all(f.read_text(), Loader=_Loader) if d)
    return docs


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


class Kube:
    """The few API operations the tests need, over the official Python client."""

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import config, dynamic

        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        cache = kubeconfig.parent / f"discovery-{kubeconfig.stem}.json"
        self.dyn = dynamic.DynamicClient(self.api, cache_file=str(cache))

    def resource(self, api_version: str, kind: str):
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def apply(
        self,
        obj: dict,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str = "fraud-tests",
    ) -> dict:
        """Server-side apply with strict field validation (unknown or duplicate fields fail)."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        params = [("fieldValidation", "Strict")]
        if dry_run:
            params.append(("dryRun", "All"))
        out = self.dyn.server_side_apply(
            res,
            body=obj,
            namespace=namespace if res.namespaced else None,
            field_manager=field_manager,
            force_conflicts=True,
            query_params=params,
        )
        return out.to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()

    def create(self, obj: dict, namespace: str | None = None, dry_run: bool = False) -> dict:
        res = self.resource(obj["apiVersion"], obj["kind"])
        params = [("fieldValidation", "Strict")] + ([("dryRun", "All")] if dry_run else [])
        return res.create(body=obj, namespace=namespace, query_params=params).to_dict()

    def wait_crds_established(self, names: list[str], timeout: float = 60) -> None:
        crd = self.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                conds = crd.get(name=name).to_dict().get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    pending.discard(name)
            time.sleep(0.2)
        if pending:
            raise RuntimeError(f"CRDs not established after {timeout}s: {sorted(pending)}")
        self.dyn.resources.invalidate_cache()

    def create_restricted_namespace(self, name: str) -> None:
        labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
        labels |= {
            f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "warn", "audit")
        }
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
        # The controller-manager would create this ServiceAccount; there is none here.
        self.create(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, namespace=name
        )

    def service_account_token(self, namespace: str, name: str) -> str:
        from kubernetes import client

        req = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        resp = client.CoreV1Api(self.api).create_namespaced_service_account_token(name, namespace, req)
        return resp.status.token
