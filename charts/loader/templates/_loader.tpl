{{- define "loader.ingressPorts" -}}
[{{ .Values.metrics.port }}]
{{- end }}
