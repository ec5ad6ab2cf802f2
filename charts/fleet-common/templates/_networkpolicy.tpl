{{/* The chart's NetworkPolicy: ingress on `ports` only from fleet-monitor pods (label
     app.kubernetes.io/part-of: fleet-monitor, plus networkPolicy.extraIngressFrom) unless
     networkPolicy.allowExternal. Egress is left open unless the chart passes `egress` rules.
     Arguments (a dict):
       context  the chart's root context
       ports    the TCP ports the pods serve (a list)
       egress   optional list of egress rules: when given, the policy restricts Egress to them */}}
{{- define "fleet-common.networkPolicy" -}}
{{- $ctx := .context }}
{{- if $ctx.Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "fleet-common.names.fullname" $ctx }}
  labels:
    {{- include "fleet-common.labels.standard" $ctx | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "fleet-common.labels.matchLabels" $ctx | nindent 6 }}
  policyTypes: [Ingress{{ if .egress }}, Egress{{ end }}]
  ingress:
    - ports:
        {{- range .ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- if not $ctx.Values.networkPolicy.allowExternal }}
      from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/part-of: fleet-monitor
        {{- with $ctx.Values.networkPolicy.extraIngressFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
  {{- with .egress }}
  egress:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
