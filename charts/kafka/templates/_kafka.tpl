{{- define "kafka.headless" -}}{{ include "kafka.fullname" . }}-headless{{- end }}

{{- define "kafka.ingressPorts" -}}
[9092, 9093]
{{- end }}

{{/* Every pod is broker and controller; the quorum is every replica. */}}
{{- define "kafka.quorumVoters" -}}
{{- $fullname := include "kafka.fullname" . }}
{{- $headless := include "kafka.headless" . }}
{{- $voters := list }}
{{- range $i := until (int .Values.replicaCount) }}
{{- $voters = append $voters (printf "%d@%s-%d.%s.%s.svc.%s:9093" $i $fullname $i $headless $.Release.Namespace $.Values.clusterDomain) }}
{{- end }}
{{- join "," $voters }}
{{- end }}

{{- define "kafka.replicationFactor" -}}
{{- min (int .Values.replication.defaultReplicationFactor) (int .Values.replicaCount) }}
{{- end }}

{{/* min.insync.replicas above the replication factor would refuse every acks=all write and transaction. */}}
{{- define "kafka.minInsyncReplicas" -}}
{{- min (int .Values.replication.minInsyncReplicas) (int (include "kafka.replicationFactor" .)) }}
{{- end }}

{{- define "kafka.bootstrapServers" -}}
{{ include "kafka.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:9092
{{- end }}

{{/* YAML numbers arrive as float64: print whole numbers as integers (2592000000, not 2.592e+09). */}}
{{- define "kafka.configValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}
