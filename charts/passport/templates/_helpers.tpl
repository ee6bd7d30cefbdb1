{{/*
Labels on every object of the chart. Names are fixed (passport-operator, passport-identity, the
ClusterRoles): the admission policy and the operator's identity refer to them, so one release per
cluster.
*/}}
{{- define "passport.labels" -}}
app.kubernetes.io/part-of: passport
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The operator's pods: what its Deployment, Service, PodDisruptionBudget and NetworkPolicy select. */}}
{{- define "passport.selector" -}}
app.kubernetes.io/name: passport-operator
{{- end }}
