{{- define "kafka.headless" -}}{{ include "fleet-common.names.fullname" . }}-headless{{- end }}

{{- define "kafka.ingressPorts" -}}
[9092, 9093]
{{- end }}

{{/* Every pod is broker and controller; the quorum is every replica. */}}
{{- define "kafka.quorumVoters" -}}
{{- $fullname := include "fleet-common.names.fullname" . }}
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
{{ include "fleet-common.names.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:9092
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

{{/* --- authentication (auth.enabled): SASL_SSL, SCRAM users, ACLs ------------------------------- */}}

{{- define "kafka.usersSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-users" (include "fleet-common.names.fullname" .)) }}
{{- end }}

{{- define "kafka.tlsSecret" -}}
{{- .Values.tls.existingSecret | default (printf "%s-tls" (include "fleet-common.names.fullname" .)) }}
{{- end }}

{{/* The names the brokers' certificate is valid for: every pod (headless), the Service in each
     form clients use, and the extra ones. */}}
{{- define "kafka.dnsNames" -}}
{{- $fullname := include "fleet-common.names.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list (printf "*.%s.%s.svc.%s" (include "kafka.headless" .) $ns .Values.clusterDomain) (printf "*.%s.%s.svc" (include "kafka.headless" .) $ns) }}
{{- $names = concat $names (list $fullname (printf "%s.%s" $fullname $ns) (printf "%s.%s.svc" $fullname $ns) (printf "%s.%s.svc.%s" $fullname $ns .Values.clusterDomain)) }}
{{- concat $names .Values.tls.extraDnsNames | toJson }}
{{- end }}

{{/* Base64 of a list of byte values (0-255), padded: templates have no byte literals. */}}
{{- define "kafka.base64Bytes" -}}
{{- $alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" }}
{{- $bytes := . }}
{{- $n := len $bytes }}
{{- range $i := untilStep 0 $n 3 }}
{{- $b1 := 0 }}{{ if lt (add $i 1) $n }}{{ $b1 = index $bytes (add $i 1) }}{{ end }}
{{- $b2 := 0 }}{{ if lt (add $i 2) $n }}{{ $b2 = index $bytes (add $i 2) }}{{ end }}
{{- $v := add (mul (index $bytes $i) 65536) (mul $b1 256) $b2 }}
{{- $sextets := list (div $v 262144) (mod (div $v 4096) 64) (mod (div $v 64) 64) (mod $v 64) }}
{{- $chars := min 4 (add 1 (sub $n $i)) }}
{{- range $j := until (int $chars) }}{{ $s := int (index $sextets $j) }}{{ substr $s (int (add1 $s)) $alphabet }}{{ end }}
{{- repeat (int (sub 4 $chars)) "=" }}
{{- end }}
{{- end }}

{{/* An RSA key from sprig (PKCS#1, "RSA PRIVATE KEY") as PKCS#8 ("PRIVATE KEY"), the only form
     Kafka's PEM keystore reads unencrypted: the PKCS#1 DER wrapped in PrivateKeyInfo
     SEQUENCE { INTEGER 0, SEQUENCE { OID rsaEncryption, NULL }, OCTET STRING <pkcs1> }.
     Lengths are 2-byte DER (0x82): RSA 2048-4096 keys are 256..65535 bytes long. */}}
{{- define "kafka.pkcs8" -}}
{{- $der := regexReplaceAll "-----[A-Z ]+-----|\\s" . "" | b64dec }}
{{- $n := len $der }}
{{- $total := add $n 22 }}
{{- $header := list 48 130 (div $total 256) (mod $total 256) 2 1 0 48 13 6 9 42 134 72 134 247 13 1 1 1 5 0 4 130 (div $n 256) (mod $n 256) }}
{{- $body := printf "%s%s" (include "kafka.base64Bytes" $header | b64dec) $der | b64enc }}
{{- printf "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" (regexReplaceAll "(.{64})" $body "${1}\n" | trimSuffix "\n") }}
{{- end }}

{{/* The admin's client settings for the provisioning Job's tools (--command-config). */}}
{{- define "kafka.adminClientProperties" -}}
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=/certs/ca.crt
{{- end }}
