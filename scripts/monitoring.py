"""Write the chart's recording rules and the Grafana dashboard's expressions from fraudcore/promql.py.

Usage: python scripts/monitoring.py   (`make monitoring`; the tests fail when the files are stale)
"""

import json
from pathlib import Path

from fraudcore.promql import recording_rules_yaml, with_dashboard_targets

CHART = Path(__file__).resolve().parents[1] / "charts" / "fraud-detection"
RULES = CHART / "rules" / "recording.yaml"
DASHBOARD = CHART / "dashboards" / "fraud-detection.json"


def dashboard_json() -> str:
    """The committed dashboard with its expressions from the table."""
    return json.dumps(with_dashboard_targets(json.loads(DASHBOARD.read_text())), indent=2) + "\n"


def main() -> None:
    RULES.write_text(recording_rules_yaml())
    DASHBOARD.write_text(dashboard_json())


if __name__ == "__main__":
    main()
