{{- define "timescaledb.ingressPorts" -}}
[5432]
{{- end }}

{{- define "timescaledb.secretName" -}}
{{- .Values.auth.existingSecret | default (include "timescaledb.fullname" .) }}
{{- end }}

{{- define "timescaledb.tlsSecretName" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "timescaledb.fullname" .)) }}
{{- end }}

{{- define "timescaledb.host" -}}
{{ include "timescaledb.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{- define "timescaledb.sslmode" -}}
{{- ternary "require" "disable" .Values.tls.enabled }}
{{- end }}

{{/* YAML numbers arrive as float64: print whole numbers as integers. */}}
{{- define "timescaledb.configValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}
