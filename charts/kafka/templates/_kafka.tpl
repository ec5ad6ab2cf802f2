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

{{/* A Kubernetes memory quantity ("4Gi", "1536Mi", "4G", bytes) in MiB, rounded down. */}}
{{- define "kafka.mebibytes" -}}
{{- if kindIs "string" . }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $factors := dict "" 0.00000095367431640625 "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.000953674316 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 }}
{{- $unit := trimPrefix $number . }}
{{- if or (not $number) (not (hasKey $factors $unit)) }}{{ fail (printf "kafka: %q is not a memory quantity" .) }}{{ end }}
{{- mulf (float64 $number) (get $factors $unit) | floor | int64 }}
{{- else }}
{{- divf (float64 .) 1048576.0 | floor | int64 }}
{{- end }}
{{- end }}

{{/* KAFKA_HEAP_OPTS: heapOpts, else half the container's memory limit as -Xms and -Xmx, so the
     operator's `resources` moves the heap too. The other half is the page cache Kafka reads and
     writes through and the JVM's off-heap memory: a heap near the limit gets the broker OOM-killed
     (prod once had -Xmx4g in a 4Gi container). An explicit -Xmx above 60% of the limit fails. */}}
{{- define "kafka.heapOpts" -}}
{{- $limit := include "kafka.mebibytes" .Values.resources.limits.memory | int64 }}
{{- if .Values.heapOpts }}
{{- $xmx := regexFind "-Xmx[0-9]+[kKmMgG]?" .Values.heapOpts | trimPrefix "-Xmx" }}
{{- if $xmx }}
{{- $number := regexFind "^[0-9]+" $xmx }}
{{- $mib := mulf (float64 $number) (get (dict "" 0.00000095367431640625 "k" 0.0009765625 "m" 1.0 "g" 1024.0) (trimPrefix $number $xmx | lower)) }}
{{- if gt $mib (mulf $limit 0.6) }}
{{- fail (printf "kafka: heapOpts -Xmx%s is over 60%% of the memory limit %v, leaving too little for page cache and off-heap memory" $xmx .Values.resources.limits.memory) }}
{{- end }}
{{- end }}
{{- .Values.heapOpts }}
{{- else }}
{{- $heap := div $limit 2 }}
{{- printf "-Xms%dm -Xmx%dm" $heap $heap }}
{{- end }}
{{- end }}
