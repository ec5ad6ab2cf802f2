{{- define "api.ingressPorts" -}}
[8000]
{{- end }}

{{- define "api.keysSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-keys" (include "fleet-common.names.fullname" .)) }}
{{- end }}

{{- /* The generated admin key's token: a Secret of its own, apart from the API's configuration. */}}
{{- define "api.tokenSecret" -}}
{{- printf "%s-admin-token" (include "fleet-common.names.fullname" .) }}
{{- end }}
