{{/* 6121 TaskManager data exchange (between TaskManagers), 6122 TaskManager RPC, 6123 JobManager
     RPC, 6124 blob server, 8081 REST/UI, 9249 Prometheus. */}}
{{- define "flink_job.ingressPorts" -}}
[6121, 6122, 6123, 6124, 8081, 9249]
{{- end }}

{{- define "flink_job.jobmanager" -}}{{ include "fleet-common.names.fullname" . }}-jobmanager{{- end }}

{{/* True (non-empty) when checkpoints go to the release's volume instead of checkpoints.uri. */}}
{{- define "flink_job.localVolume" -}}
{{- if and .Values.persistence.enabled (not .Values.checkpoints.uri) }}true{{ end }}
{{- end }}

{{/* Where checkpoints, savepoints and HA metadata go: <checkpoints.uri>/<release> on object storage
     (one prefix per release, so the jobs of an environment can share a bucket), else the volume.
     Without either, the checkpoints would land on each pod's own disk: refused. */}}
{{- define "flink_job.storageDir" -}}
{{- if .Values.checkpoints.uri }}
{{- printf "%s/%s" (.Values.checkpoints.uri | trimSuffix "/") (include "fleet-common.names.fullname" .) }}
{{- else if .Values.persistence.enabled }}
{{- "file:///flink-data" }}
{{- else }}
{{- fail "flink-job: set checkpoints.uri (e.g. s3://bucket/flink) or persistence.enabled: the JobManager and TaskManagers need one checkpoint location" }}
{{- end }}
{{- end }}

{{/* A Kubernetes memory quantity as a Flink MemorySize ("2Gi" -> "2g"), so the limit is the one source. */}}
{{- define "flink_job.flinkMemory" -}}
{{- . | replace "Gi" "g" | replace "Mi" "m" | lower }}
{{- end }}

{{/* Stable job id per release: Kubernetes HA recovers the job by id after a JobManager restart. */}}
{{- define "flink_job.jobId" -}}
{{- include "fleet-common.names.fullname" . | sha256sum | trunc 32 }}
{{- end }}

{{/* The affinity of every pod: the values' affinity, else, with the ReadWriteOnce checkpoint
     volume, all pods of the release on the node of the first one (the volume attaches to one node). */}}
{{- define "flink_job.affinity" -}}
{{- if .Values.affinity }}
{{- toYaml .Values.affinity }}
{{- else if and (include "flink_job.localVolume" .) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "fleet-common.labels.matchLabels" . | nindent 10 }}
{{- end }}
{{- end }}

{{/* env.java.opts.all of the Flink distribution's own conf/config.yaml (the module exports/opens
     Flink needs on Java 17). The pods' conf is this chart's ConfigMap alone (an emptyDir over the
     image's conf/), so without them the JobManager's first reflective access fails and the
     application exits (tests/integration/test_pods_as_rendered.py ran into it);
     tests/unit/test_charts_render.py checks this equals the pinned Flink's value. */}}
{{- define "flink_job.javaOpts" -}}
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
{{- end }}

{{/* SASL_SSL to the kafka release (its auth.enabled): KAFKA_* as contracts/kafka_auth.py reads
     them, the user's password from the kafka release's users Secret, its CA mounted. */}}
{{- define "flink_job.kafkaAuthEnv" -}}
{{- with .Values.kafka.auth }}
{{- if .enabled }}
- {name: KAFKA_SECURITY_PROTOCOL, value: SASL_SSL}
- {name: KAFKA_SASL_MECHANISM, value: {{ .mechanism | quote }}}
- {name: KAFKA_SASL_USERNAME, value: {{ .username | quote }}}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .passwordSecret | quote }}, key: {{ .username | quote }}}
- {name: KAFKA_SSL_CA_FILE, value: /etc/kafka-ca/ca.crt}
{{- end }}
{{- end }}
{{- end }}

{{- define "flink_job.kafkaCaMount" -}}
{{- if .Values.kafka.auth.enabled }}
- {name: kafka-ca, mountPath: /etc/kafka-ca, readOnly: true}
{{- end }}
{{- end }}

{{- define "flink_job.kafkaCaVolume" -}}
{{- if .Values.kafka.auth.enabled }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.auth.caSecret | quote }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- end }}

{{/* The sources' consumer group, also the sinks' transactional-id prefix. With kafka.auth the
     kafka chart's ACLs grant the jobs user only groups and transactional ids starting with
     kafkaJobsGroupPrefix (contracts/kafka_auth.py): any other would be refused at run time. */}}
{{- define "flink_job.consumerGroup" -}}
{{- $group := .Values.kafka.consumerGroup | default (include "fleet-common.names.fullname" .) }}
{{- if and .Values.kafka.auth.enabled (not (hasPrefix .Values.kafkaJobsGroupPrefix $group)) }}
{{- fail (printf "flink-job: kafka.consumerGroup %q (empty: the release's full name) must start with %q when kafka.auth.enabled: the kafka chart's ACLs grant the jobs user only such groups and transactional ids" $group .Values.kafkaJobsGroupPrefix) }}
{{- end }}
{{- $group }}
{{- end }}

{{/* fleet-common's pod settings with this chart's affinity, and the service account token mounted
     when Kubernetes HA is on (the pods then read and write the HA ConfigMaps and leases). */}}
{{- define "flink_job.podCommon" -}}
{{- $automount := or .Values.serviceAccount.automountServiceAccountToken .Values.highAvailability.enabled }}
{{- include "fleet-common.pod.common" (dict "context" . "automountServiceAccountToken" $automount "affinity" (include "flink_job.affinity" .)) }}
{{- end }}
