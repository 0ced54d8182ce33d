"""The images the cluster runs trust only Debian's certificate authorities, never the build host's, and load
LightGBM's native library."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.e2e.kube import Cluster

pytestmark = pytest.mark.e2e

PEM = re.compile(r"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----")
# The trusted bundle, and every certificate Debian's ca-certificates package ships in the image.
SHOW_CERTIFICATES = (
    "cat /etc/ssl/certs/ca-certificates.crt; echo '#shipped'; "
    "find /usr/share/ca-certificates -name '*.crt' -exec cat {} +; ls /etc/build-ca.pem 2>/dev/null || true"
)


def _certificates(text: str) -> set[str]:
    return {"".join(pem.split()) for pem in PEM.findall(text)}


def _images() -> list[str]:
    tag = os.environ.get("FRAUD_E2E_APP_TAG", "e2e")
    return [
        f"fraud-detection/predictor:{tag}",
        f"fraud-detection/jobs:{tag}",
        os.environ.get("FRAUD_E2E_POSTGRES_IMAGE", "fraud-detection/postgres:15-bookworm"),
    ]


@pytest.mark.parametrize("image", _images())
def test_images_trust_only_debians_certificate_authorities(cluster: Cluster, image: str) -> None:
    shown = subprocess.run(
        ["docker", "run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", SHOW_CERTIFICATES],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    trusted, shipped = shown.split("#shipped")
    assert "/etc/build-ca.pem" not in shipped, "the build stage's CA file reached the final image"
    extra = _certificates(trusted) - _certificates(shipped)
    assert _certificates(trusted), f"{image} trusts no certificate authority at all"
    assert not extra, f"{image} trusts {len(extra)} certificate authorities Debian does not ship"


@pytest.mark.parametrize("image", _images()[:2])
def test_lightgbm_loads_in_the_app_images(cluster: Cluster, image: str) -> None:
    """LightGBM's library needs the system's libgomp.so.1, which slim bases lack."""
    loaded = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", "import lightgbm; print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.stdout.strip() == "ok", loaded.stderr
