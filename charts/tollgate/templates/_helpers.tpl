{{/* The chart name, as a DNS label. */}}
{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The resource name prefix, and the Service name. Kept to 63 characters: the Service name is a
DNS label, and it is the first label of the certificate's names.
*/}}
{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: admission-webhook
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference. With a digest the tag is kept (name:tag@digest): a digest that no tag
points at is removed by the registry's delete-untagged garbage collection (seed 000).
*/}}
{{- define "tollgate.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- $ref := printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/* The Secret holding tls.crt and tls.key. */}}
{{- define "tollgate.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" }}
{{- required "certificates.existingSecret is required with certificates.mode secret (see webhook-certs/README.md)" .Values.certificates.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "tollgate.fullname" .) }}
{{- end }}
{{- end }}

{{/* The names the API server and the certificate know the Service by. */}}
{{- define "tollgate.dnsNames" -}}
{{- $svc := include "tollgate.fullname" . }}
{{- $ns := .Release.Namespace }}
- {{ $svc }}
- {{ $svc }}.{{ $ns }}
- {{ $svc }}.{{ $ns }}.svc
- {{ $svc }}.{{ $ns }}.svc.cluster.local
{{- end }}

{{/*
The registry deadline: below the webhook's timeoutSeconds, so that the server answers (allowing
with a warning, or denying, as the policy says) before the API server gives up on it and applies
the failurePolicy instead. Default: two seconds below the timeout, or half of a timeout of 1 or 2
seconds.
*/}}
{{- define "tollgate.registryDeadline" -}}
{{- $timeout := int .Values.webhook.timeoutSeconds }}
{{- $deadline := .Values.registry.deadlineSeconds }}
{{- if and (kindIs "invalid" $deadline) (gt $timeout 2) }}
{{- $deadline = sub $timeout 2 }}
{{- else if kindIs "invalid" $deadline }}
{{- $deadline = divf $timeout 2 }}
{{- end }}
{{- if or (le (float64 $deadline) 0.0) (ge (float64 $deadline) (float64 $timeout)) }}
{{- fail (printf "registry.deadlineSeconds (%v) must be above 0 and below webhook.timeoutSeconds (%d); raise webhook.timeoutSeconds, set registry.deadlineSeconds, or set registry.resolve false" $deadline $timeout) }}
{{- end }}
{{- $deadline }}
{{- end }}

{{/* Annotations of the webhook configurations: cert-manager's CA injection, and the user's. */}}
{{- define "tollgate.webhookAnnotations" -}}
{{- $a := dict }}
{{- if eq .Values.certificates.mode "cert-manager" }}
{{- $_ := set $a "cert-manager.io/inject-ca-from" (printf "%s/%s-tls" .Release.Namespace (include "tollgate.fullname" .)) }}
{{- end }}
{{- $a = merge $a .Values.webhook.annotations }}
{{- if $a }}
annotations:
  {{- toYaml $a | nindent 2 }}
{{- end }}
{{- end }}

{{/* The clientConfig of a webhook; the argument is (list $ "/path"). */}}
{{- define "tollgate.clientConfig" -}}
{{- $ := index . 0 }}
clientConfig:
  service:
    name: {{ include "tollgate.fullname" $ }}
    namespace: {{ $.Release.Namespace }}
    path: {{ index . 1 }}
    port: {{ $.Values.service.port }}
  {{- if eq $.Values.certificates.mode "secret" }}
  caBundle: {{ required "certificates.caBundle is required with certificates.mode secret: the base64 CA bundle that `tollgate certs generate` prints (see webhook-certs/README.md)" $.Values.certificates.caBundle }}
  {{- end }}
{{- end }}

{{/* The namespaces never evaluated: the configured ones and the release namespace. */}}
{{- define "tollgate.exemptNamespaces" -}}
{{- toJson (uniq (append .Values.server.exemptNamespaces .Release.Namespace)) }}
{{- end }}

{{- define "tollgate.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    # Left out by name: a webhook that also judged kube-system or its own namespace could block
    # the very pods that bring it back.
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- include "tollgate.exemptNamespaces" . | fromJsonArray | toYaml | nindent 8 }}
    {{- with .Values.webhook.namespaceSelector.matchExpressions }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- with .Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The PromQL selector of this release's metrics. */}}
{{- define "tollgate.metricsSelector" -}}
namespace="{{ .Release.Namespace }}",service="{{ include "tollgate.fullname" . }}"
{{- end }}

{{/*
Kind → admission rule (apiGroup, version, resource) for the kinds the server evaluates. The
argument is a kind; the output one YAML mapping.
*/}}
{{- define "tollgate.kindRule" -}}
{{- $table := dict
  "Pod" (list "" "pods")
  "PodTemplate" (list "" "podtemplates")
  "ReplicationController" (list "" "replicationcontrollers")
  "Deployment" (list "apps" "deployments")
  "ReplicaSet" (list "apps" "replicasets")
  "StatefulSet" (list "apps" "statefulsets")
  "DaemonSet" (list "apps" "daemonsets")
  "Job" (list "batch" "jobs")
  "CronJob" (list "batch" "cronjobs") }}
{{- $r := required (printf "unknown kind %q in mutating.kinds" .) (get $table .) }}
- apiGroups: [{{ index $r 0 | quote }}]
  apiVersions: ["v1"]
  resources: [{{ index $r 1 | quote }}]
  operations: ["CREATE", "UPDATE"]
  scope: Namespaced
{{- end }}

{{/*
The audit's names and labels. The audit pods get a name label of their own: with the server's
selector labels, the Service would send admission requests to them and the PodDisruptionBudget
would count them. CronJob names are kept to 52 characters (the Job controller appends a suffix).
*/}}
{{- define "tollgate.auditName" -}}
{{- printf "%s-audit" (include "tollgate.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "tollgate.auditSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-audit" (include "tollgate.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollgate.auditLabels" -}}
helm.sh/chart: {{ include "tollgate.chart" . }}
{{ include "tollgate.auditSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: audit
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Whether anything reads the cluster: the audit CronJob or the server's periodic audit. */}}
{{- define "tollgate.auditReadsCluster" -}}
{{- if or .Values.audit.cronJob.enabled .Values.audit.periodic.enabled .Values.catalog.enabled }}true{{ end }}
{{- end }}

{{/*
The subjects of the audit's read-only RBAC: the CronJob's ServiceAccount and, with the periodic
audit, the server's.
*/}}
{{- define "tollgate.auditSubjects" -}}
{{- if .Values.audit.cronJob.enabled }}
- kind: ServiceAccount
  name: {{ include "tollgate.auditName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
{{- if or .Values.audit.periodic.enabled .Values.catalog.enabled }}
- kind: ServiceAccount
  name: {{ include "tollgate.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
What the audit reads, and nothing else: get, list and watch on the pod-bearing kinds. No
Secrets, no write verbs.
*/}}
{{- define "tollgate.auditRules" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["apps"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["jobs", "cronjobs"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* The name of the OpenReports writer's RBAC (audit.periodic.openReports). */}}
{{- define "tollgate.openReportsName" -}}
{{- printf "%s-openreports" (include "tollgate.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
What the periodic audit needs to keep its OpenReports Reports: read them, write them by
server-side apply (create and patch), and delete those of workloads that are gone. Reports only.
*/}}
{{- define "tollgate.openReportsRules" -}}
- apiGroups: ["openreports.io"]
  resources: ["reports"]
  verbs: ["get", "list", "create", "patch", "delete"]
{{- end }}

{{/*
The catalog is a SQLite file on the chart's PersistentVolumeClaim (no PostgreSQL Secret).
*/}}
{{- define "tollgate.catalogSqlite" -}}
{{- if and .Values.catalog.enabled (not .Values.catalog.postgres.existingSecret) }}true{{ end }}
{{- end }}

{{/*
Where the catalog is, for a container's args (SQLite) ...
*/}}
{{- define "tollgate.catalogArg" -}}
{{- if include "tollgate.catalogSqlite" . }}
- --catalog=sqlite:/var/lib/tollgate/catalog/catalog.db
{{- end }}
{{- end }}

{{/*
... or its env (PostgreSQL: the URL and its password stay out of argv, which other users of the
node can read).
*/}}
{{- define "tollgate.catalogEnv" -}}
{{- if and .Values.catalog.enabled .Values.catalog.postgres.existingSecret }}
- name: TOLLGATE_CATALOG
  valueFrom:
    secretKeyRef:
      name: {{ .Values.catalog.postgres.existingSecret }}
      key: {{ .Values.catalog.postgres.key }}
{{- end }}
{{- end }}
