{{/* The chart's PodDisruptionBudget, only with more than one replica (on a single replica it would
     block node drains). Arguments (a dict):
       context    the chart's root context
       component  optional app.kubernetes.io/component the budget selects (name gets -<component>) */}}
{{- define "fleet-common.pdb" -}}
{{- $ctx := .context }}
{{- if and $ctx.Values.pdb.create (gt (int $ctx.Values.replicaCount) 1) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "fleet-common.names.fullname" $ctx }}{{ with .component }}-{{ . }}{{ end }}
  labels:
    {{- include "fleet-common.labels.standard" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $ctx.Values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "fleet-common.labels.matchLabels" $ctx | nindent 6 }}
      {{- with .component }}
      app.kubernetes.io/component: {{ . }}
      {{- end }}
{{- end }}
{{- end }}
