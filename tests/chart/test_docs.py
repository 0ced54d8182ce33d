"""The chart README's values table is helm-docs' rendering of values.yaml: a stale README fails."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.conftest import CACHE, CHART, require_tools

pytestmark = pytest.mark.chart

HELM_DOCS_ARGS = ("--template-files", "README.md.gotmpl", "--sort-values-order", "file")
"""The same arguments as `make docs`."""


def test_readme_values_table_is_current(tmp_path: Path) -> None:
    helm_docs = CACHE / "bin" / "helm-docs"
    require_tools({"helm-docs": helm_docs})
    copy = tmp_path / CHART.name
    shutil.copytree(CHART, copy)
    proc = subprocess.run(
        [str(helm_docs), "--chart-search-root", str(tmp_path), *HELM_DOCS_ARGS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = (copy / "README.md").read_text()
    assert rendered == (CHART / "README.md").read_text(), (
        "charts/fraud-detection/README.md is stale: run make docs"
    )
