{{/* The chart's ServiceAccount (serviceAccount.create, .name, .annotations,
     .automountServiceAccountToken). Takes the chart's root context. */}}
{{- define "fleet-common.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "fleet-common.names.serviceAccount" . }}
  labels:
    {{- include "fleet-common.labels.standard" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
{{- end }}
{{- end }}
