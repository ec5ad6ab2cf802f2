{{/* Labels. Selector labels never change over a release's life (a workload's selector is immutable). */}}

{{- define "fleet-common.labels.matchLabels" -}}
app.kubernetes.io/name: {{ include "fleet-common.names.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* app.kubernetes.io/part-of: fleet-monitor is what every NetworkPolicy admits (fleet-common.networkPolicy). */}}
{{- define "fleet-common.labels.standard" -}}
helm.sh/chart: {{ include "fleet-common.names.chart" . }}
{{ include "fleet-common.labels.matchLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleet-monitor
{{- end }}
