{{- define "api.ingressPorts" -}}
[8000]
{{- end }}

{{- define "api.keysSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-keys" (include "api.fullname" .)) }}
{{- end }}
