{{- define "vector.ingressPorts" -}}
[8686, 9598]
{{- end }}

{{/* Kafka alerts -> Postgres alarm_events. Acknowledgements on the sink make the Kafka source commit
     an offset only after the row is written (and the disk buffer survives restarts in between). */}}
{{- define "vector.config" -}}
data_dir: /var/lib/vector
api:
  enabled: true
  address: 0.0.0.0:8686
sources:
  alerts:
    type: kafka
    bootstrap_servers: {{ .Values.kafka.bootstrapServers | quote }}
    group_id: {{ .Values.kafka.consumerGroup | quote }}
    topics: [{{ .Values.alertsTopic | quote }}]
    auto_offset_reset: earliest
    librdkafka_options:
      # The jobs write alarm records in Kafka transactions committed with their checkpoints: ship
      # only committed ones (records of a failed checkpoint are aborted and replayed).
      isolation.level: read_committed
    {{- with .Values.kafka.auth }}
    {{- if .enabled }}
    # SASL_SSL as the vector user: the password from the env (the kafka release's Secret).
    sasl:
      enabled: true
      mechanism: {{ .mechanism | quote }}
      username: {{ .username | quote }}
      password: "${KAFKA_SASL_PASSWORD}"
    tls:
      enabled: true
      ca_file: /etc/kafka-ca/ca.crt
    {{- end }}
    {{- end }}
    decoding:
      codec: json
  internal_metrics:
    type: internal_metrics
sinks:
  alarm_events:
    type: postgres
    inputs: [alerts]
    endpoint: "${DATABASE_URL}"
    table: {{ .Values.sink.table | quote }}
    pool_size: {{ .Values.sink.poolSize }}
    batch:
      max_events: {{ .Values.sink.batch.maxEvents }}
      timeout_secs: {{ .Values.sink.batch.timeoutSecs }}
    buffer:
      type: disk
      max_size: {{ .Values.buffer.maxSizeBytes | int64 }}{{/* YAML numbers arrive as float64 (8.589934592e+09); Vector takes integers only */}}
      when_full: block
    acknowledgements:
      enabled: true
  metrics:
    type: prometheus_exporter
    inputs: [internal_metrics]
    address: 0.0.0.0:9598
{{- end }}

{{/* SASL_SSL to the kafka release (its auth.enabled): KAFKA_* as contracts/kafka_auth.py reads
     them, the user's password from the kafka release's users Secret, its CA mounted. */}}
{{- define "vector.kafkaAuthEnv" -}}
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

{{- define "vector.kafkaCaMount" -}}
{{- if .Values.kafka.auth.enabled }}
- {name: kafka-ca, mountPath: /etc/kafka-ca, readOnly: true}
{{- end }}
{{- end }}

{{- define "vector.kafkaCaVolume" -}}
{{- if .Values.kafka.auth.enabled }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.auth.caSecret | quote }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- end }}
