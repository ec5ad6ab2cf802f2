{{/* repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "fleet-common.images.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
