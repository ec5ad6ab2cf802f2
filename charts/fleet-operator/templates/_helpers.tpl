{{/* fleet-common's labels plus the component: the operator's objects live beside other charts' in
     its namespace. Names, selector labels and the image are fleet-common's. */}}
{{- define "fleet_operator.labels" -}}
{{ include "fleet-common.labels.standard" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* What the operator may do in a namespace it manages: FleetMonitors, Events, and exactly the
     kinds the component charts create (Helm applies them and keeps its release records in Secrets). */}}
{{- define "fleet_operator.namespacedRules" -}}
- apiGroups: [fleet-monitor.io]
  resources: [fleetmonitors]
  verbs: [get, list, watch, patch, update]
- apiGroups: [fleet-monitor.io]
  resources: [fleetmonitors/status]
  verbs: [get, patch, update]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [configmaps, secrets, services, serviceaccounts, persistentvolumeclaims]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules, servicemonitors]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
