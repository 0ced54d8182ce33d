"""The drift check's files: `drift.json` and `drift.html`, a self-contained page made from the
template `report.html.j2`, with a histogram per drifted column (inline SVG)."""

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from jobs.drift.detection import SCORE, DriftResult, Test

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Figure:
    """One drifted column's histograms."""

    name: str
    test: Test
    svg: str


@cache
def _template():  # -> jinja2.Template; jinja2 is imported only where a report is rendered
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["metric"] = lambda value: "-" if value is None else f"{value:.3f}"
    return environment.get_template(TEMPLATE)


def render(result: DriftResult, reference: np.ndarray, window: np.ndarray) -> str:
    """The report page; `reference` and `window` are the tested matrices (30 features + score)."""
    names = [*result.features, SCORE]
    tests = {name: result.score if name == SCORE else result.features[name] for name in names}
    figures = [
        Figure(name, tests[name], _histograms(name, reference[:, i], window[:, i]))
        for i, name in enumerate(names)
        if tests[name].drifted
    ]
    rows = sorted(tests.items(), key=lambda item: item[1].p_value)
    return _template().render(result=result, figures=figures, tests=rows) + "\n"


def _histograms(name: str, reference: np.ndarray, window: np.ndarray) -> str:
    """Reference and window histograms on shared bins, as inline SVG."""
    from matplotlib.figure import Figure as Plot  # no pyplot: no backend or global state involved

    both = np.concatenate([reference, window])
    low, high = np.percentile(both, [0.5, 99.5])
    bins = np.linspace(low, high, 40) if high > low else 10
    plot = Plot(figsize=(4.2, 2.6))
    axes = plot.subplots()
    axes.hist(reference, bins=bins, density=True, alpha=0.55, label="reference", color="#4a78b5")
    axes.hist(window, bins=bins, density=True, alpha=0.55, label="window", color="#d1603d")
    axes.set_title(name, fontsize=10)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    plot.tight_layout()
    buffer = io.StringIO()
    plot.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def write(result: DriftResult, page: str, directory: Path) -> tuple[Path, Path]:
    """Write `drift.json` and `drift.html` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    result_path, report_path = directory / "drift.json", directory / "drift.html"
    result_path.write_text(json.dumps(result.to_dict(), indent=2))
    report_path.write_text(page)
    return result_path, report_path
