{{/* Scheduling and pod-level settings every workload shares. Arguments (a dict):
       context                       the chart's root context
       automountServiceAccountToken  optional, else .Values.serviceAccount.automountServiceAccountToken
       affinity                      optional YAML text, else .Values.affinity (empty: none) */}}
{{- define "fleet-common.pod.common" -}}
{{- $ctx := .context }}
serviceAccountName: {{ include "fleet-common.names.serviceAccount" $ctx }}
automountServiceAccountToken: {{ hasKey . "automountServiceAccountToken" | ternary .automountServiceAccountToken $ctx.Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml $ctx.Values.podSecurityContext | nindent 2 }}
{{- with $ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $ctx.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (hasKey . "affinity" | ternary .affinity (ternary "" (toYaml $ctx.Values.affinity) (empty $ctx.Values.affinity))) | trim }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with $ctx.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
