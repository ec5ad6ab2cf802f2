{{- define "grafana.ingressPorts" -}}
[3000]
{{- end }}

{{- define "grafana.adminSecret" -}}
{{- .Values.admin.existingSecret | default (printf "%s-admin" (include "fleet-common.names.fullname" .)) }}
{{- end }}
