{{- define "timescaledb.ingressPorts" -}}
[5432]
{{- end }}

{{- define "timescaledb.secretName" -}}
{{- .Values.auth.existingSecret | default (include "fleet-common.names.fullname" .) }}
{{- end }}

{{- define "timescaledb.tlsSecretName" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "fleet-common.names.fullname" .)) }}
{{- end }}

{{- define "timescaledb.host" -}}
{{ include "fleet-common.names.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{- define "timescaledb.sslmode" -}}
{{- ternary "require" "disable" .Values.tls.enabled }}
{{- end }}

{{/* YAML numbers arrive as float64: print whole numbers as integers. */}}
{{- define "timescaledb.configValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* TS_TUNE_MEMORY from the memory limit: timescaledb-tune takes PostgreSQL's byte format
     (<integer>kB|MB|GB|TB, units of 1024) and stops the first start on a Kubernetes quantity such
     as "4Gi". Whole MiB ("4Gi" -> "4096MB", "1536Mi" -> "1536MB", "4G" -> "3814MB"). */}}
{{- define "timescaledb.tuneMemory" -}}
{{- if kindIs "string" . }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $factors := dict "" 0.00000095367431640625 "Ki" 0.0009765625 "Mi" 1.0 "Gi" 1024.0 "Ti" 1048576.0 "k" 0.000953674316 "M" 0.95367431640625 "G" 953.67431640625 "T" 953674.31640625 }}
{{- $unit := trimPrefix $number . }}
{{- if or (not $number) (not (hasKey $factors $unit)) }}{{ fail (printf "timescaledb: resources.limits.memory %q is not a memory quantity" .) }}{{ end }}
{{- printf "%dMB" (mulf (float64 $number) (get $factors $unit) | floor | int64) }}
{{- else }}
{{- printf "%dMB" (divf (float64 .) 1048576.0 | floor | int64) }}
{{- end }}
{{- end }}

{{/* The least-privilege roles' LOGIN users as storage/roles.py names them (migration 0015_roles
     makes the group roles; the migration Job's `--login-users` the users). A unit test holds the
     two together. */}}
{{- define "timescaledb.roleLogins" -}}
owner: fleet_owner
writer: fleet_writer_login
api: fleet_api_login
grafana: fleet_grafana_login
{{- end }}

{{/* Where clients find the database's CA (tls.ca): each client chart mounts the key `ca.crt` of
     its role's Secret here (optional: absent without a CA). */}}
{{- define "timescaledb.caPath" -}}
/etc/fleet-monitor/database-ca/ca.crt
{{- end }}

{{/* Clients verify the server's certificate and name when a CA is given; else as before. */}}
{{- define "timescaledb.clientSslmode" -}}
{{- if and .Values.tls.enabled .Values.tls.ca }}verify-full{{ else }}{{ include "timescaledb.sslmode" . }}{{ end }}
{{- end }}
