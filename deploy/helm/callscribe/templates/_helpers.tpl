{{/*
Names and labels. Components: gateway, asr-worker, analysis-worker.
*/}}

{{- define "callscribe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; a component's resources are "<fullname>-<component>". */}}
{{- define "callscribe.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* (dict "ctx" $ "component" "gateway") -> "<fullname>-gateway" */}}
{{- define "callscribe.componentName" -}}
{{- printf "%s-%s" (include "callscribe.fullname" .ctx | trunc 45 | trimSuffix "-") .component }}
{{- end }}

{{- define "callscribe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every callscribe pod of the release: what the NATS NetworkPolicy admits. */}}
{{- define "callscribe.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "callscribe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* (dict "ctx" $ "component" "gateway") */}}
{{- define "callscribe.selectorLabels" -}}
{{ include "callscribe.releaseSelectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* (dict "ctx" $ "component" "gateway"); component may be empty for release-wide objects. */}}
{{- define "callscribe.labels" -}}
helm.sh/chart: {{ include "callscribe.chart" .ctx }}
{{- if .component }}
{{ include "callscribe.selectorLabels" . }}
{{- else }}
{{ include "callscribe.releaseSelectorLabels" .ctx }}
{{- end }}
app.kubernetes.io/part-of: callscribe
{{- if .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "callscribe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "callscribe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "callscribe.secretName" -}}
{{- default (include "callscribe.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "callscribe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/*
The NATS chart's names, as its own helpers compute them (nats.fullname: the release name when it holds
the chart name, else "<release>-nats"; its client Service is named after it unless service.name is set).
*/}}
{{- define "callscribe.natsFullname" -}}
{{- $nats := .Values.nats | default dict }}
{{- if $nats.fullnameOverride }}
{{- $nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "nats" $nats.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The NATS chart's server pod labels (nats.selectorLabels). */}}
{{- define "callscribe.natsSelectorLabels" -}}
app.kubernetes.io/name: {{ default "nats" (.Values.nats | default dict).nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end }}

{{/* NATS_URL: the release's NATS client Service, or externalNats.url. */}}
{{- define "callscribe.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- $svc := include "callscribe.natsFullname" . }}
{{- with .Values.nats.service }}{{ with .name }}{{ $svc = . }}{{ end }}{{ end }}
{{- printf "nats://%s:4222" $svc }}
{{- else }}
{{- required "externalNats.url is required when nats.enabled=false" .Values.externalNats.url }}
{{- end }}
{{- end }}

{{/*
Checks shared by the templates, included once from each Deployment: fail the render early, with a
sentence, rather than deploy something that cannot work.
*/}}
{{- define "callscribe.validate" -}}
{{- $js := int .Values.jetstreamReplicas }}
{{- if or (lt $js 1) (gt $js 5) }}
{{- fail "jetstreamReplicas (CALLSCRIBE_JS_REPLICAS) must be 1 to 5" }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- $cluster := .Values.nats.config.cluster }}
{{- $nodes := ternary (int $cluster.replicas) 1 (and $cluster.enabled (gt (int $cluster.replicas) 1)) }}
{{- if gt $js $nodes }}
{{- fail (printf "jetstreamReplicas=%d needs at least %d NATS nodes; nats.config.cluster has %d" $js $js $nodes) }}
{{- end }}
{{- if not .Values.nats.config.jetstream.enabled }}
{{- fail "nats.config.jetstream.enabled must be true: callscribe keeps its calls, tasks and records in JetStream" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds, checked against the drain: (dict "ctx" $ "grace" N "preStop" S "role" name).
*/}}
{{- define "callscribe.grace" -}}
{{- $drainS := div (add (int .ctx.Values.drainMs) 999) 1000 }}
{{- $need := add $drainS (int .preStop) 5 }}
{{- if lt (int .grace) (int $need) }}
{{- fail (printf "%s.terminationGracePeriodSeconds=%d is too short: CALLSCRIBE_DRAIN_MS (%ds) + preStop sleep (%ds) + 5 s of bus drain need %d" .role (int .grace) $drainS (int .preStop) $need) }}
{{- end }}
{{- int .grace }}
{{- end }}

{{/*
A role's environment: the fixed variables, then .Values.env merged under the role's env (a map). A map key
that repeats a fixed variable fails the render.
(dict "ctx" $ "fixed" (YAML text of the fixed env entries) "env" roleEnvMap)
*/}}
{{- define "callscribe.env" -}}
{{- $taken := dict }}
{{- range (.fixed | fromYamlArray) }}{{ $_ := set $taken .name true }}{{ end }}
{{- .fixed }}
{{- $merged := merge (deepCopy (.env | default dict)) (deepCopy (.ctx.Values.env | default dict)) }}
{{- range $k := keys $merged | sortAlpha }}
{{- $v := get $merged $k }}
{{- if hasKey $taken $k }}
{{- fail (printf "env %s is set by the chart from its own value; do not repeat it in env" $k) }}
{{- end }}
{{- if kindIs "map" $v }}
{{ list (merge (dict "name" $k) $v) | toYaml }}
{{- else if kindIs "invalid" $v }}
{{- fail (printf "env %s has no value" $k) }}
{{- else }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Env entries every role gets. */}}
{{- define "callscribe.commonEnv" -}}
- name: NATS_URL
  value: {{ include "callscribe.natsUrl" . | quote }}
- name: CALLSCRIBE_JS_REPLICAS
  value: {{ .Values.jetstreamReplicas | toString | quote }}
- name: CALLSCRIBE_DRAIN_MS
  value: {{ .Values.drainMs | int | toString | quote }}
- name: CALLSCRIBE_DATA_DIR
  value: /data
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/* An optional key of the Secret as an env entry: (dict "ctx" $ "key" "CALLSCRIBE_ACCOUNTS" "optional" true) */}}
{{- define "callscribe.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "callscribe.secretName" .ctx }}
      key: {{ .key }}
      optional: {{ .optional }}
{{- end }}

{{/* Pod-level scheduling: (dict "ctx" $ "component" "gateway" "values" .Values.gateway) */}}
{{- define "callscribe.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if or .values.spreadOverNodes .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- if .values.spreadOverNodes }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "callscribe.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 8 }}
  {{- end }}
  {{- with .values.topologySpreadConstraints }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Scratch volumes of every role (read-only root filesystem): (dict "tmp" "2Gi") */}}
{{- define "callscribe.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .tmp }}
- name: data
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "callscribe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end }}
