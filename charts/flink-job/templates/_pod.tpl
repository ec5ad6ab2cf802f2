{{/* Volumes and mounts shared by JobManager and TaskManagers: Flink's entrypoint edits its conf
     in place, so the ConfigMap is copied into a writable emptyDir by an init container. */}}
{{- define "flink_job.volumes" -}}
- name: config-src
  configMap:
    name: {{ include "fleet-common.names.fullname" . }}
- name: flink-conf
  emptyDir: {}
- name: flink-log
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if include "flink_job.localVolume" . }}
- name: flink-data
  persistentVolumeClaim:
    claimName: {{ include "fleet-common.names.fullname" . }}-data
{{- end }}
{{- with include "flink_job.kafkaCaVolume" . | trim }}{{ . | nindent 0 }}{{ end }}
{{- end }}

{{- define "flink_job.mounts" -}}
- {name: flink-conf, mountPath: /opt/flink/conf}
- {name: flink-log, mountPath: /opt/flink/log}
- {name: tmp, mountPath: /tmp}
- {name: config-src, mountPath: /etc/fleet-monitor/thresholds.yaml, subPath: thresholds.yaml, readOnly: true}
{{- if include "flink_job.localVolume" . }}
- {name: flink-data, mountPath: /flink-data}
{{- end }}
{{- with include "flink_job.kafkaCaMount" . | trim }}{{ . | nindent 0 }}{{ end }}
{{- end }}

{{- define "flink_job.initConfig" -}}
- name: config
  image: {{ include "fleet-common.images.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["cp", "/config-src/config.yaml", "/config-src/log4j-console.properties", "/opt/flink/conf/"]
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {cpu: 100m, memory: 64Mi}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - {name: config-src, mountPath: /config-src, readOnly: true}
    - {name: flink-conf, mountPath: /opt/flink/conf}
{{- end }}

{{/* The official entrypoint writes jobmanager.rpc.address into the conf at start, from
     JOB_MANAGER_RPC_ADDRESS or else the pod's own hostname: it must name the JobManager Service.
     FLINK_PROPERTIES (envsubst'ed by the entrypoint into the conf) carries the object-store key. */}}
{{- define "flink_job.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef: {fieldPath: status.podIP}
- {name: JOB_MANAGER_RPC_ADDRESS, value: {{ include "flink_job.jobmanager" . }}}
- {name: FLINK_LOG_DIR, value: /opt/flink/log}
{{- with .Values.checkpoints.s3.existingSecret }}
- name: S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.checkpoints.s3.accessKeyIdKey }}}
- name: S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ . }}, key: {{ $.Values.checkpoints.s3.secretAccessKeyKey }}}
- name: FLINK_PROPERTIES
  value: |
    s3.access-key: ${S3_ACCESS_KEY_ID}
    s3.secret-key: ${S3_SECRET_ACCESS_KEY}
{{- end }}
{{- include "flink_job.kafkaAuthEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
