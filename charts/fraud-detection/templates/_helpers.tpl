{{/* Chart name, shortened to the DNS label limit. */}}
{{- define "fraud-detection.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource. Kept short (<= 40 chars) because KServe appends
"-challenger-predictor" and similar suffixes to derived objects.
*/}}
{{- define "fraud-detection.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fraud-detection.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels for selectors: stable across upgrades, never the chart version. */}}
{{- define "fraud-detection.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fraud-detection.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "fraud-detection.labels" -}}
helm.sh/chart: {{ include "fraud-detection.chart" . }}
{{ include "fraud-detection.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fraud-detection
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Names of the per-component objects. */}}
{{- define "fraud-detection.isvcName" -}}
{{- printf "%s-%s" (include "fraud-detection.fullname" .ctx) .role }}
{{- end }}
{{- /* The Service the route mirrors to: it reaches the challenger's shadow port, so the predictor
tells mirrored copies from client requests by the port they arrive on. */}}
{{- define "fraud-detection.shadowService" -}}
{{- printf "%s-shadow" (include "fraud-detection.isvcName" (dict "ctx" . "role" "challenger")) }}
{{- end }}
{{- define "fraud-detection.shadowPort" -}}8090{{- end }}
{{- define "fraud-detection.routeName" -}}
{{- include "fraud-detection.fullname" . }}
{{- end }}
{{- define "fraud-detection.mlflowName" -}}
{{- printf "%s-mlflow" (include "fraud-detection.fullname" .) }}
{{- end }}
{{- define "fraud-detection.modelCacheName" -}}
{{ include "fraud-detection.fullname" . }}-model-cache
{{- end }}
{{- define "fraud-detection.bootstrapJobName" -}}
{{ include "fraud-detection.fullname" . }}-bootstrap-{{ .Release.Revision }}
{{- end }}
{{- define "fraud-detection.postgresqlName" -}}
{{- printf "%s-postgresql" (include "fraud-detection.fullname" .) }}
{{- end }}
{{- define "fraud-detection.databaseSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s-db" (include "fraud-detection.fullname" .) }}
{{- else }}
{{- required "externalDatabase.existingSecret is required when postgresql.enabled is false" .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}
{{- define "fraud-detection.apiTokenSecretName" -}}
{{- default (printf "%s-api-token" (include "fraud-detection.fullname" .)) .Values.predictor.apiToken.existingSecret }}
{{- end }}
{{- define "fraud-detection.predictorServiceAccountName" -}}
{{- printf "%s-predictor" (include "fraud-detection.fullname" .) }}
{{- end }}
{{- define "fraud-detection.jobsServiceAccountName" -}}
{{- printf "%s-jobs" (include "fraud-detection.fullname" .) }}
{{- end }}
{{- define "fraud-detection.canaryServiceAccountName" -}}
{{- printf "%s-canary" (include "fraud-detection.fullname" .) }}
{{- end }}

{{- define "fraud-detection.predictorImage" -}}
{{- printf "%s:%s" .Values.predictor.image.repository (default .Chart.AppVersion .Values.predictor.image.tag) }}
{{- end }}
{{- define "fraud-detection.jobsImage" -}}
{{- printf "%s:%s" .Values.jobs.image.repository (default .Chart.AppVersion .Values.jobs.image.tag) }}
{{- end }}

{{- define "fraud-detection.mlflowTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:5000" (include "fraud-detection.mlflowName" .) .Release.Namespace }}
{{- else }}
{{- required "mlflow.externalTrackingUri is required when mlflow.enabled is false" .Values.mlflow.externalTrackingUri }}
{{- end }}
{{- end }}

{{- define "fraud-detection.modelUri" -}}
{{- printf "models:/%s/%v" .ctx.Values.model.registeredName .version }}
{{- end }}

{{/* Pod and container security contexts (restricted Pod Security Standard). */}}
{{- define "fraud-detection.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}
{{- define "fraud-detection.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
Live canary state: champion/challenger versions, challenger weight and shadow share (the percent
of the route's rule-0 RequestMirror filter to the challenger: `percent`, else `fraction`, else 100;
0 without it). On install (or with canary.respectLiveState=false) these come from values; on
upgrade they are read from the objects in the cluster, so `helm upgrade` keeps what `fraud canary`
or kubectl set. Returns YAML.
*/}}
{{- define "fraud-detection.canaryState" -}}
{{- $champion := .Values.champion.modelVersion }}
{{- $challenger := .Values.challenger.modelVersion }}
{{- $weight := .Values.canary.weight }}
{{- $shadow := .Values.canary.shadowPercent }}
{{- if .Values.canary.respectLiveState }}
{{- $ns := .Release.Namespace }}
{{- if eq .Values.predictor.deploymentMode "Knative" }}
{{- $isvc := lookup "serving.kserve.io/v1beta1" "InferenceService" $ns (include "fraud-detection.fullname" .) }}
{{- with $isvc }}
{{- $ann := .metadata.annotations | default dict }}
{{- $champion = index $ann "fraud-detection.io/champion-version" | default $champion }}
{{- $challenger = index $ann "fraud-detection.io/challenger-version" | default $challenger }}
{{- $weight = .spec.predictor.canaryTrafficPercent | default 0 }}
{{- end }}
{{- else }}
{{- range $role := list "champion" "challenger" }}
{{- $isvc := lookup "serving.kserve.io/v1beta1" "InferenceService" $ns (include "fraud-detection.isvcName" (dict "ctx" $ "role" $role)) }}
{{- with $isvc }}
{{- range (index .spec.predictor.containers 0).env | default list }}
{{- if eq .name "FRAUD_MODEL_URI" }}
{{- $v := regexFind "[0-9]+$" .value }}
{{- if and $v (eq $role "champion") }}{{ $champion = $v }}{{ end }}
{{- if and $v (eq $role "challenger") }}{{ $challenger = $v }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $route := lookup "gateway.networking.k8s.io/v1" "HTTPRoute" $ns (include "fraud-detection.routeName" .) }}
{{- with $route }}
{{- $challengerSvc := printf "%s-predictor" (include "fraud-detection.isvcName" (dict "ctx" $ "role" "challenger")) }}
{{- range (index .spec.rules 0).backendRefs | default list }}
{{- if eq .name $challengerSvc }}{{ $weight = .weight }}{{ end }}
{{- end }}
{{- $shadow = 0 }}
{{- range (index .spec.rules 0).filters | default list }}
{{- $mirror := .requestMirror | default dict }}
{{- if and (eq .type "RequestMirror") (eq ($mirror.backendRef | default dict).name (include "fraud-detection.shadowService" $)) }}
{{- if hasKey $mirror "percent" }}{{ $shadow = $mirror.percent }}
{{- else if $mirror.fraction }}{{ $shadow = round (divf (mulf 100 $mirror.fraction.numerator) ($mirror.fraction.denominator | default 100)) 0 }}
{{- else }}{{ $shadow = 100 }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
championVersion: {{ $champion | int }}
challengerVersion: {{ $challenger | int }}
challengerWeight: {{ $weight | int }}
shadowPercent: {{ $shadow | int }}
{{- end }}

{{/* The pod of a job (the CronJobs and the bootstrap Job): the jobs image, the registry, the
audit database, the read-only root filesystem with a writable /tmp. Takes ctx, job (its name),
cfg (its values: resources, and for the analysis prometheusUrl and plan), command, args and
movesTraffic (runs as the canary ServiceAccount). */}}
{{- define "fraud-detection.jobPod" -}}
{{- $ctx := .ctx }}{{ $job := .job }}{{ $cfg := .cfg }}{{ $command := .command }}{{ $args := .args }}{{ $movesTraffic := .movesTraffic -}}
metadata:
  labels:
    {{- include "fraud-detection.selectorLabels" $ctx | nindent 4 }}
    app.kubernetes.io/component: {{ $job }}
    fraud-detection.io/job: "true"
spec:
  restartPolicy: Never
  {{- if $movesTraffic }}
  serviceAccountName: {{ include "fraud-detection.canaryServiceAccountName" $ctx }}
  automountServiceAccountToken: true
  {{- else }}
  serviceAccountName: {{ include "fraud-detection.jobsServiceAccountName" $ctx }}
  automountServiceAccountToken: false
  {{- end }}
  {{- with $ctx.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "fraud-detection.podSecurityContext" $ctx | nindent 4 }}
  containers:
    - name: {{ $job }}
      image: {{ include "fraud-detection.jobsImage" $ctx }}
      imagePullPolicy: {{ $ctx.Values.jobs.image.pullPolicy }}
      command: {{ toJson $command }}
      {{- with $args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      env:
        - name: MLFLOW_TRACKING_URI
          value: {{ include "fraud-detection.mlflowTrackingUri" $ctx | quote }}
        - name: FRAUD_AUDIT_DSN
          valueFrom:
            secretKeyRef:
              name: {{ include "fraud-detection.databaseSecretName" $ctx }}
              key: audit-dsn
        - name: FRAUD_CANARY_NAME
          value: {{ include "fraud-detection.fullname" $ctx | quote }}
        {{- if eq $job "canary-analysis" }}
        - name: FRAUD_PROMETHEUS_URL
          value: {{ $cfg.prometheusUrl | quote }}
        - name: FRAUD_CANARY_PLAN
          value: {{ toJson $cfg.plan | quote }}
        {{- end }}
        {{- with $ctx.Values.jobs.pushgatewayUrl }}
        - name: FRAUD_PUSHGATEWAY_URL
          value: {{ . | quote }}
        {{- end }}
        - name: HOME
          value: /tmp
        # Reports and model cache on the writable /tmp volume (read-only root filesystem).
        - name: FRAUD_HOME
          value: /tmp/.fraud
        {{- with $ctx.Values.jobs.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml $cfg.resources | nindent 8 }}
      securityContext:
        {{- include "fraud-detection.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
{{- end }}
