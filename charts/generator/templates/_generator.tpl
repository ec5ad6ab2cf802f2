{{- define "generator.ingressPorts" -}}
[9100]
{{- end }}
