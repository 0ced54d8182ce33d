"""The drift check's files: `drift.json` and `drift.html`, a self-contained page made from the
template `report.html.j2`, with a histogram (numeric) or frequency bars (categories) per drifted
column (inline SVG)."""

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fraudcore.schema import Schema
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


def render(result: DriftResult, reference: np.ndarray, window: np.ndarray, schema: Schema) -> str:
    """The report page; `reference` and `window` are the tested matrices (features + score)."""
    names = [*result.features, SCORE]
    tests = {name: result.score if name == SCORE else result.features[name] for name in names}
    figures = [
        Figure(name, tests[name], _plot(name, reference[:, i], window[:, i], _labels(schema, i)))
        for i, name in enumerate(names)
        if tests[name].drifted
    ]
    rows = sorted(tests.items(), key=lambda item: item[1].p_value)
    return _template().render(result=result, figures=figures, tests=rows) + "\n"


def _labels(schema: Schema, column: int) -> list[str] | None:
    """The category names of a categorical or boolean column (the last: "none of the known")."""
    if column >= len(schema):
        return None
    feature = schema.features[column]
    known = {"categorical": list(feature.categories), "boolean": ["false", "true"]}.get(feature.kind)
    return None if known is None else [*known, "(unknown)"]


def _plot(name: str, reference: np.ndarray, window: np.ndarray, labels: list[str] | None) -> str:
    """Reference and window histograms on shared bins — or, for categories, frequency bars — as
    inline SVG."""
    from matplotlib.figure import Figure as Plot  # no pyplot: no backend or global state involved

    plot = Plot(figsize=(4.2, 2.6))
    axes = plot.subplots()
    if labels is None:
        both = np.concatenate([reference, window])
        low, high = np.percentile(both, [0.5, 99.5])
        bins = np.linspace(low, high, 40) if high > low else 10
        axes.hist(reference, bins=bins, density=True, alpha=0.55, label="reference", color="#4a78b5")
        axes.hist(window, bins=bins, density=True, alpha=0.55, label="window", color="#d1603d")
    else:
        at = np.arange(len(labels))
        for sample, offset, label, colour in (
            (reference, -0.2, "reference", "#4a78b5"),
            (window, 0.2, "window", "#d1603d"),
        ):
            shares = np.bincount(sample.astype(int), minlength=len(labels)) / max(len(sample), 1)
            axes.bar(at + offset, shares, width=0.4, label=label, color=colour)
        axes.set_xticks(at, labels, rotation=45, ha="right")
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
