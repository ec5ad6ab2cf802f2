{{- define "generator.ingressPorts" -}}
[9100]
{{- end }}

{{/* SASL_SSL to the kafka release (its auth.enabled): KAFKA_* as contracts/kafka_auth.py reads
     them, the user's password from the kafka release's users Secret, its CA mounted. */}}
{{- define "generator.kafkaAuthEnv" -}}
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

{{- define "generator.kafkaCaMount" -}}
{{- if .Values.kafka.auth.enabled }}
- {name: kafka-ca, mountPath: /etc/kafka-ca, readOnly: true}
{{- end }}
{{- end }}

{{- define "generator.kafkaCaVolume" -}}
{{- if .Values.kafka.auth.enabled }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.auth.caSecret | quote }}
    items: [{key: ca.crt, path: ca.crt}]
{{- end }}
{{- end }}
