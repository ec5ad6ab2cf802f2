{{/* Names, labels and shared snippets (Bitnami/helm-create conventions). */}}

{{- define "flink_job.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release name alone when it already names the chart ("fleet-monitor-CHART"), else release-chart. */}}
{{- define "flink_job.fullname" -}}
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

{{- define "flink_job.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flink_job.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flink_job.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flink_job.labels" -}}
helm.sh/chart: {{ include "flink_job.chart" . }}
{{ include "flink_job.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleet-monitor
{{- end }}

{{- define "flink_job.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "flink_job.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flink_job.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Scheduling and pod-level settings every workload shares. */}}
{{- define "flink_job.podCommon" -}}
serviceAccountName: {{ include "flink_job.serviceAccountName" . }}
automountServiceAccountToken: {{ or .Values.serviceAccount.automountServiceAccountToken .Values.highAvailability.enabled }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (include "flink_job.affinity" .) }}
affinity:
  {{- . | trim | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Existing Secret value on upgrade, else a fresh random one: generated secrets survive upgrades. */}}
{{- define "flink_job.secretValue" -}}
{{- $secret := lookup "v1" "Secret" .namespace .name }}
{{- if and $secret (hasKey ($secret.data | default dict) .key) }}
{{- index $secret.data .key | b64dec }}
{{- else }}
{{- randAlphaNum (.length | default 32) }}
{{- end }}
{{- end }}
