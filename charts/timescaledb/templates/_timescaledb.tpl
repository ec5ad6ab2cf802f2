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
