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
