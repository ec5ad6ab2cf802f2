{{- define "flink_job.ingressPorts" -}}
[6123, 6124, 6122, 8081, 9249]
{{- end }}

{{- define "flink_job.jobmanager" -}}{{ include "flink_job.fullname" . }}-jobmanager{{- end }}

{{- define "flink_job.storageDir" -}}
{{- .Values.checkpoints.uri | default "file:///flink-data" | trimSuffix "/" }}
{{- end }}

{{/* A Kubernetes memory quantity as a Flink MemorySize ("2Gi" -> "2g"), so the limit is the one source. */}}
{{- define "flink_job.flinkMemory" -}}
{{- . | replace "Gi" "g" | replace "Mi" "m" | lower }}
{{- end }}

{{/* Stable job id per release: Kubernetes HA recovers the job by id after a JobManager restart. */}}
{{- define "flink_job.jobId" -}}
{{- include "flink_job.fullname" . | sha256sum | trunc 32 }}
{{- end }}

{{- define "flink_job.databaseSecret" -}}
{{- .Values.database.existingSecret }}
{{- end }}
