"""Tier 2, offline: helm lint, helm template for every ci/*-values.yaml, schema validation."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fraudcore.promql import recording_rules
from jobs.canary.plan import Plan
from jobs.canary.state import CanaryState, knative_state, standard_state
from tests.chart.conftest import CACHE, CHART, CI_VALUES, REPO, require_tools
from tests.chart.podspecs import long_running, pod_templates
from tests.chart.schemas import SchemaIndex

pytestmark = pytest.mark.chart

Render = Callable[..., list[dict]]
SCENARIOS = pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)


@pytest.fixture(scope="session")
def schema_index(openapi_dir: Path, crd_docs: list[dict]) -> SchemaIndex:
    return SchemaIndex(openapi_dir, crd_docs)


@pytest.fixture(scope="session")
def rendered(render: Render) -> dict[str, list[dict]]:
    return {p.stem: render("-f", str(p)) for p in CI_VALUES}


def test_there_are_scenarios() -> None:
    assert {"default-values", "knative-values", "monitoring-values"} <= {p.stem for p in CI_VALUES}


@SCENARIOS
def test_helm_lint(helm: Callable[..., subprocess.CompletedProcess], values: Path) -> None:
    out = helm("lint", "--strict", str(CHART), "-f", str(values), "--kube-version", "v1.32.13")
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@SCENARIOS
def test_every_object_matches_its_schema(
    rendered: dict[str, list[dict]], schema_index: SchemaIndex, values: Path
) -> None:
    errors = [e for obj in rendered[values.stem] for e in schema_index.errors(obj)]
    assert not errors, "\n".join(errors)


def test_schema_validation_catches_mistakes(schema_index: SchemaIndex, rendered: dict) -> None:
    """The validator is strict: a misspelt field or a wrong type is reported."""
    isvc = next(o for o in rendered["default-values"] if o["kind"] == "InferenceService")
    bad = json.loads(json.dumps(isvc))
    bad["spec"]["predictor"]["minReplica"] = 1
    bad["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    errors = schema_index.errors(bad)
    assert any("minReplica" in e for e in errors), errors
    assert any("containerPort" in e for e in errors), errors
    deploy = next(o for o in rendered["default-values"] if o["kind"] == "Deployment")
    bad = json.loads(json.dumps(deploy))
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True
    assert any("runAsNonroot" in e for e in schema_index.errors(bad))


@SCENARIOS
def test_pods_are_restricted_and_bounded(rendered: dict[str, list[dict]], values: Path) -> None:
    for obj in rendered[values.stem]:
        for where, _, pod in pod_templates(obj):
            psc = pod.get("securityContext", {})
            assert psc.get("runAsNonRoot") is True, where
            assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            # Only the canary ServiceAccount (retrain job starting a canary) needs its token.
            token = pod.get("serviceAccountName", "").endswith("-canary")
            assert pod.get("automountServiceAccountToken") is token, where
            for c in pod["containers"]:
                sc = c.get("securityContext", {})
                assert sc.get("allowPrivilegeEscalation") is False, (where, c["name"])
                assert sc.get("capabilities", {}).get("drop") == ["ALL"], (where, c["name"])
                assert sc.get("readOnlyRootFilesystem") is True, (where, c["name"])
                assert {"requests", "limits"} <= set(c.get("resources", {})), (where, c["name"])
                if long_running(obj):
                    assert "readinessProbe" in c, (where, c["name"])
                    assert "livenessProbe" in c, (where, c["name"])


@SCENARIOS
def test_labels_and_selectors(rendered: dict[str, list[dict]], values: Path) -> None:
    for obj in rendered[values.stem]:
        labels = obj["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by"):
            assert key in labels, (obj["kind"], obj["metadata"]["name"], key)
        selector = obj.get("spec", {}).get("selector", {})
        selector = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        assert "helm.sh/chart" not in selector, obj["metadata"]["name"]
        if obj["kind"] != "Pod":  # templates' labels must stay stable across chart versions
            for _, pod_labels, _ in pod_templates(obj):
                assert "helm.sh/chart" not in pod_labels


def test_default_install_shape(rendered: dict[str, list[dict]]) -> None:
    objs = rendered["default-values"]
    kinds = sorted({o["kind"] for o in objs})
    assert {
        "InferenceService",
        "HTTPRoute",
        "CronJob",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "StatefulSet",
        "Deployment",
        "Secret",
    } <= set(kinds)
    assert not {"PrometheusRule", "PodMonitor", "ServiceMonitor"} & set(kinds), "monitoring is opt-in"
    isvcs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "InferenceService"}
    assert set(isvcs) == {"fraud-fraud-detection-champion", "fraud-fraud-detection-challenger"}
    for name, isvc in isvcs.items():
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
        container = isvc["spec"]["predictor"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert container["env"][0]["name"] == "FRAUD_MODEL_URI", "kubectl patch docs rely on env/0"
        assert re.fullmatch(r"models:/fraud-detector/\d+", env["FRAUD_MODEL_URI"]["value"])
        assert env["FRAUD_MODEL_ROLE"]["value"] == name.rsplit("-", 1)[1]
        assert env["MLFLOW_TRACKING_URI"]["value"] == "http://fraud-fraud-detection-mlflow.fraud.svc:5000"
        assert "FRAUD_API_TOKEN" not in env
        assert container["command"] == ["python", "-m", "model_server"]
        assert container["args"] == ["--model_name", "fraud-detector", "--http_port", "8080"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        strategy = isvc["spec"]["predictor"]["deploymentStrategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    route = next(o for o in objs if o["kind"] == "HTTPRoute")
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"], r["port"]) for r in refs] == [
        ("fraud-fraud-detection-champion-predictor", 100, 80),
        ("fraud-fraud-detection-challenger-predictor", 0, 80),
    ]


def test_canary_values_split_traffic(rendered: dict[str, list[dict]]) -> None:
    objs = rendered["canary-values"]
    route = next(o for o in objs if o["kind"] == "HTTPRoute")
    assert [r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]] == [90, 10]
    uris = {
        o["metadata"]["name"]: o["spec"]["predictor"]["containers"][0]["env"][0]["value"]
        for o in objs
        if o["kind"] == "InferenceService"
    }
    assert uris == {
        "fraud-fraud-detection-champion": "models:/fraud-detector/3",
        "fraud-fraud-detection-challenger": "models:/fraud-detector/4",
    }
    token = next(o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"].endswith("api-token"))
    assert len(token["stringData"]["token"]) == 40


def test_production_values_spread_replicas_and_budget_disruptions(rendered: dict[str, list[dict]]) -> None:
    """Two replicas per role, each role's pods spread over nodes and zones, one PodDisruptionBudget
    per role selecting exactly that role's pods; the default install (one replica) has no budget."""
    objs = rendered["production-values"]
    budgets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PodDisruptionBudget"}
    isvcs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "InferenceService"}
    assert budgets.keys() == isvcs.keys()
    for name, isvc in isvcs.items():
        predictor = isvc["spec"]["predictor"]
        assert predictor["minReplicas"] == 2
        pod_labels = predictor["labels"]
        assert budgets[name]["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": pod_labels}}
        spread = predictor["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        assert all(c["labelSelector"] == {"matchLabels": pod_labels} for c in spread)
    assert not [o for o in rendered["default-values"] if o["kind"] == "PodDisruptionBudget"]


def test_production_values_keep_the_model_cache_on_a_shared_volume(rendered: dict[str, list[dict]]) -> None:
    """Every predictor pod mounts one ReadWriteMany claim where the model cache lives; the default
    install keeps the cache in the pod's emptyDir."""
    objs = rendered["production-values"]
    [claim] = [
        o for o in objs if o["kind"] == "PersistentVolumeClaim" and "model-cache" in o["metadata"]["name"]
    ]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for isvc in (o for o in objs if o["kind"] == "InferenceService"):
        predictor = isvc["spec"]["predictor"]
        volumes = {v["name"]: v for v in predictor["volumes"]}
        assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        mounts = {m["name"]: m["mountPath"] for m in predictor["containers"][0]["volumeMounts"]}
        env = {e["name"]: e.get("value") for e in predictor["containers"][0]["env"]}
        assert mounts["model-cache"] == f"{env['FRAUD_HOME']}/models"  # Settings.model_cache_dir
    default = rendered["default-values"]
    assert not [
        o for o in default if o["kind"] == "PersistentVolumeClaim" and "model-cache" in o["metadata"]["name"]
    ]


def test_bootstrap_job_trains_only_the_missing_versions(render: Render, tmp_path: Path) -> None:
    """Each listed version is one `fraud train --if-missing N`, its arguments quoted for the shell;
    the Job is named by the release revision (a Job's template cannot be changed by an upgrade)."""
    values = tmp_path / "values.yaml"
    versions = [
        ["--model", "logistic", "--rows", 150000],
        ["--data", "runs:/abc/it's.csv", "--label", "isFraud"],
    ]
    values.write_text(yaml.safe_dump({"jobs": {"bootstrap": {"versions": versions}}}))
    [job] = [o for o in render("-f", str(values)) if o["kind"] == "Job"]
    assert job["metadata"]["name"] == "fraud-fraud-detection-bootstrap-1"
    pod = job["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"] == "fraud-fraud-detection-jobs" and not pod["automountServiceAccountToken"]
    )
    container = pod["containers"][0]
    assert container["command"] == ["sh", "-c"]
    script = container["args"][0].replace("set -e\n", "")
    listed = subprocess.run(
        ["sh", "-c", "fraud() { printf '%s|' \"$@\"; echo; }\n" + script], capture_output=True, text=True
    )
    assert listed.stdout.splitlines() == [
        "train|--if-missing|1|--model|logistic|--rows|150000|",
        "train|--if-missing|2|--data|runs:/abc/it's.csv|--label|isFraud|",
    ]
    assert not [o for o in render("--set", "jobs.bootstrap.enabled=false") if o["kind"] == "Job"]


def test_knative_mode_is_one_inferenceservice(rendered: dict[str, list[dict]]) -> None:
    objs = rendered["knative-values"]
    isvcs = [o for o in objs if o["kind"] == "InferenceService"]
    assert len(isvcs) == 1
    assert not [o for o in objs if o["kind"] == "HTTPRoute"]
    isvc = isvcs[0]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 20
    env = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
    assert env["FRAUD_MODEL_URI"] == "models:/fraud-detector/4"  # the canary revision
    assert isvc["metadata"]["annotations"]["fraud-detection.io/champion-version"] == "3"


def test_the_canary_reader_reads_what_the_chart_renders(rendered: dict[str, list[dict]]) -> None:
    """The Python state reader and the templates agree on env names, URI pattern and annotations."""
    standard = {
        o["metadata"]["name"]: o
        for o in rendered["canary-values"]
        if o["kind"] in ("InferenceService", "HTTPRoute")
    }
    state = standard_state(
        standard["fraud-fraud-detection-champion"],
        standard["fraud-fraud-detection-challenger"],
        standard["fraud-fraud-detection"],
    )
    assert state == CanaryState("Standard", champion_version=3, challenger_version=4, challenger_weight=10)
    [knative] = [o for o in rendered["knative-values"] if o["kind"] == "InferenceService"]
    assert knative_state(knative) == CanaryState("Knative", 3, 4, 20)


def test_shadow_percent_renders_a_mirror_to_the_challenger(
    render: Render, rendered: dict[str, list[dict]], schema_index: SchemaIndex
) -> None:
    """`canary.shadowPercent` is the route's RequestMirror filter, valid for the Gateway API CRD and
    read back by the canary tooling; without it (every scenario) the route has no filters."""
    objs = render("-f", str(CHART / "ci" / "canary-values.yaml"), "--set", "canary.shadowPercent=30")
    standard = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("InferenceService", "HTTPRoute")}
    route = standard["fraud-fraud-detection"]
    assert route["spec"]["rules"][0]["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "fraud-fraud-detection-challenger-shadow", "port": 80},
                "percent": 30,
            },
        }
    ]
    # The mirror's Service reaches the challenger's pods on the port its predictor records as shadow.
    [service] = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"].endswith("-shadow")]
    challenger = standard["fraud-fraud-detection-challenger"]
    assert service["spec"]["selector"].items() <= challenger["spec"]["predictor"]["labels"].items()
    env = {e["name"]: e.get("value") for e in challenger["spec"]["predictor"]["containers"][0]["env"]}
    assert str(service["spec"]["ports"][0]["targetPort"]) == env["FRAUD_SHADOW_PORT"]
    assert not schema_index.errors(route)
    state = standard_state(
        standard["fraud-fraud-detection-champion"], standard["fraud-fraud-detection-challenger"], route
    )
    assert state == CanaryState("Standard", 3, 4, 10, shadow_percent=30)
    routes = [o for objs in rendered.values() for o in objs if o["kind"] == "HTTPRoute"]
    assert routes and not [r for r in routes if "filters" in r["spec"]["rules"][0]]


def test_analysis_cronjob_runs_the_plan_as_the_canary_service_account(render: Render) -> None:
    objs = render(
        "--set", "canary.analysis.enabled=true", "--set", "canary.analysis.prometheusUrl=http://p:9090"
    )
    [job] = [o for o in objs if o["kind"] == "CronJob" and o["metadata"]["name"].endswith("-canary-analysis")]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fraud-fraud-detection-canary" and pod["automountServiceAccountToken"]
    container = pod["containers"][0]
    assert container["command"] == ["fraud", "canary", "analyze"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert Plan.from_mapping(json.loads(env["FRAUD_CANARY_PLAN"])) == Plan()
    assert env["FRAUD_PROMETHEUS_URL"] == "http://p:9090"
    [role] = [o for o in objs if o["kind"] == "Role" and o["metadata"]["name"].endswith("-canary")]
    assert {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]} in role["rules"]


def test_analysis_plan_values_are_the_engines_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["canary"]["analysis"]["plan"] == Plan().to_mapping()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "canary.analysis.enabled=true"), "needs canary.analysis.prometheusUrl"),
        (
            ("--set", "canary.analysis.enabled=true", "--set", "canary.analysis.prometheusUrl=http://p",
             "--set", "canary.rbac.create=false"),
            "canary.analysis.enabled needs canary.rbac.create=true",
        ),
    ],
)  # fmt: skip
def test_analysis_without_what_it_needs_is_refused(
    helm: Callable[..., subprocess.CompletedProcess], args: tuple[str, ...], message: str
) -> None:
    proc = helm("template", "fraud", str(CHART), *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr


def test_retrain_job_can_start_a_canary(rendered: dict[str, list[dict]]) -> None:
    jobs = {o["metadata"]["name"]: o for o in rendered["canary-values"] if o["kind"] == "CronJob"}
    pod = jobs["fraud-fraud-detection-retrain"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "fraud-fraud-detection-canary"
    container = pod["containers"][0]
    assert container["args"] == [
        "--canary-percent", "5", "--model", "lightgbm", "--tune", "20", "--tune-minutes", "30"
    ]  # fmt: skip
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FRAUD_CANARY_NAME"] == "fraud-fraud-detection"
    drift = jobs["fraud-fraud-detection-drift"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert drift["containers"][0]["args"] == ["--no-fail-on-drift"]
    assert drift["serviceAccountName"] == "fraud-fraud-detection-jobs"


def test_canary_role_is_least_privilege(rendered: dict[str, list[dict]]) -> None:
    role = next(o for o in rendered["default-values"] if o["kind"] == "Role")
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= {"get", "patch"}, rule
        assert rule["resourceNames"], rule
    assert {r["resources"][0] for r in role["rules"]} == {"inferenceservices", "httproutes"}


def test_monitoring_objects(rendered: dict[str, list[dict]]) -> None:
    objs = {o["kind"]: o for o in rendered["monitoring-values"]}
    rule = objs["PrometheusRule"]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {
        "FraudPredictorHighErrorRate",
        "FraudPredictorLatencyRegression",
        "FraudRateShift",
        "FraudDriftDetected",
        "FraudCanaryErrorsWorse",
        "FraudCanaryLatencyWorse",
    } <= set(alerts)
    for name, alert in alerts.items():
        assert alert["annotations"]["runbook"].startswith("1. "), name
        assert alert["annotations"]["runbook_url"].endswith("#" + name.lower()), name
        assert alert["labels"]["severity"] in {"warning", "critical"}
    assert 'fraud_drift_detected{job="fraud-drift"}' in alerts["FraudDriftDetected"]["expr"]
    (dashboard,) = [o for o in rendered["monitoring-values"] if o["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["fraud-detection.json"])["uid"] == "fraud-detection"
    endpoint = objs["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "http1"
    assert endpoint["path"] == "/metrics"


KNOWN_METRICS = {
    "fraud_predictions_total",
    "fraud_score_bucket",
    "fraud_batch_size_bucket",
    "fraud_rejected_requests_total",
    "fraud_model_info",
    "fraud_request_seconds_count",
    "fraud_request_seconds_bucket",
    "fraud_drift_detected",
    "fraud_drift_share_of_drifted_features",
    "fraud_drift_p_value",
    "fraud_drift_last_run_timestamp_seconds",
    "fraud_canary_step",
    "fraud_canary_decisions_total",
    "fraud_canary_check_value",
    "fraud_canary_check_limit",
}
PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "histogram_quantile",
    "max",
    "min",
    "bottomk",
    "increase",
    "and",
    "or",
    "offset",
    "ignoring",
    "time",
    "le",
    "role",
    "namespace",
    "reason",
    "decision",
    "model_version",
    "feature",
    "job",
    "layer",
    "check",
}


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^]]*\]", "", expr)
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}


def test_recording_rules_are_the_promql_table(rendered: dict[str, list[dict]]) -> None:
    rule = next(o for o in rendered["monitoring-values"] if o["kind"] == "PrometheusRule")
    [recording] = [g for g in rule["spec"]["groups"] if g["name"] == "fraud-detection.recording"]
    selector = f"namespace={json.dumps(rule['metadata']['namespace'])}"
    expected = [{"record": r.record, "expr": r.expr} for r in recording_rules(selector)]
    assert recording["rules"] == expected


def test_dashboard_and_rules_use_known_metrics(rendered: dict[str, list[dict]]) -> None:
    rule = next(o for o in rendered["monitoring-values"] if o["kind"] == "PrometheusRule")
    recorded = {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = json.loads((CHART / "dashboards" / "fraud-detection.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs += [t["expr"] for p in panels for t in p["targets"]]
    unknown = {m for e in exprs for m in _metric_names(e)} - KNOWN_METRICS - recorded
    unknown = {m for m in unknown if not re.fullmatch(r"[0-9.e]+|d|m|h|w|s", m)}
    assert not unknown, unknown
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def _properties(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    out = []
    for name, sub in schema.get("properties", {}).items():
        out.append((f"{path}{name}", sub))
        out += _properties(sub, f"{path}{name}.")
    return out


def test_values_schema_documents_every_property() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    props = _properties(schema)
    assert not [p for p, s in props if not s.get("description")]

    def leaves(d: dict, path: str = "") -> set[str]:
        return {
            k
            for key, v in d.items()
            for k in (leaves(v, f"{path}{key}.") if isinstance(v, dict) and v else {f"{path}{key}"})
        }

    documented = {p for p, _ in props}
    undocumented = {
        leaf for leaf in leaves(values) if not any(leaf == p or leaf.startswith(p + ".") for p in documented)
    }
    assert not undocumented


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("canary.weight=150", "/canary/weight"),
        ("canary.shadowPercent=101", "/canary/shadowPercent"),
        ("predictor.deploymentMode=Serverless", "/predictor/deploymentMode"),
        ("champion.modelVersion=0", "/champion/modelVersion"),
        ("canary.wieght=10", "wieght"),
        ("jobs.retrain.tune.trials=0", "/jobs/retrain/tune/trials"),
        ("jobs.retrain.model=catboost", "/jobs/retrain/model"),
    ],
)
def test_values_schema_rejects_bad_values(
    helm: Callable[..., subprocess.CompletedProcess], override: str, message: str
) -> None:
    proc = helm("template", "x", str(CHART), "--set", override, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["postgresql.enabled=false"], "externalDatabase.existingSecret is required"),
        (["mlflow.enabled=false"], "mlflow.externalTrackingUri is required"),
        (
            ["jobs.retrain.canaryPercent=5", "canary.rbac.create=false"],
            "jobs.retrain.canaryPercent needs canary.rbac.create=true",
        ),
        (["jobs.retrain.tune.minutes=60"], "jobs.retrain.tune.minutes must end within"),
        (
            ["canary.shadowPercent=10", "predictor.deploymentMode=Knative"],
            "canary.shadowPercent needs the HTTPRoute",
        ),
    ],
)
def test_inconsistent_values_fail_with_the_setting_to_fix(
    helm: Callable[..., subprocess.CompletedProcess], overrides: list[str], message: str
) -> None:
    sets = [arg for override in overrides for arg in ("--set", override)]
    proc = helm("template", "x", str(CHART), "--kube-version", "v1.32.13", *sets, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_skaffold_sets_both_images() -> None:
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    images = {a["image"] for a in config["build"]["artifacts"]}
    assert images == {"fraud-detection/predictor", "fraud-detection/jobs"}
    release = config["deploy"]["helm"]["releases"][0]
    assert release["chartPath"] == "charts/fraud-detection"
    tmpl = release["setValueTemplates"]
    assert tmpl["predictor.image.repository"] == "{{.IMAGE_REPO_fraud_detection_predictor}}"
    assert tmpl["jobs.image.tag"] == "{{.IMAGE_TAG_fraud_detection_jobs}}"
    assert "kind" in {p["name"] for p in config["profiles"]}


@pytest.fixture(scope="session")
def promql_check() -> Path:
    path = CACHE / "bin" / "promql-check"
    require_tools({"promql-check": path})
    return path


def test_every_promql_expression_parses(rendered: dict[str, list[dict]], promql_check: Path) -> None:
    """Rules and dashboard queries go through Prometheus' own PromQL parser."""
    rule = next(o for o in rendered["monitoring-values"] if o["kind"] == "PrometheusRule")
    exprs = {
        f"rule {r.get('alert') or r.get('record')}": r["expr"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
    }
    dashboard = json.loads((CHART / "dashboards" / "fraud-detection.json").read_text())
    grafana_vars = {"$__rate_interval": "5m", "$namespace": "fraud", "$role": "champion"}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in grafana_vars.items():
                expr = expr.replace(var, value)
            exprs[f"panel {panel['title']!r} {target['refId']}"] = expr
    proc = subprocess.run(
        [str(promql_check)], input=json.dumps(exprs), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = subprocess.run(
        [str(promql_check)], input=json.dumps({"x": "rate(x[5m)"}), capture_output=True, text=True
    )
    assert broken.returncode == 1
