{{/* Existing Secret value on upgrade, else a fresh random one: generated secrets survive upgrades.
     Arguments (a dict): namespace, name (the Secret), key, length (optional, 32). */}}
{{- define "fleet-common.secrets.value" -}}
{{- $secret := lookup "v1" "Secret" .namespace .name }}
{{- if and $secret (hasKey ($secret.data | default dict) .key) }}
{{- index $secret.data .key | b64dec }}
{{- else }}
{{- randAlphaNum (.length | default 32) }}
{{- end }}
{{- end }}
