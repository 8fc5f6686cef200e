{{/* The chart's name, or nameOverride. */}}
{{- define "actor-token-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name, used for every object the chart makes. Truncated to 63 characters
(the DNS label limit of some name fields).
*/}}
{{- define "actor-token-operator.fullname" -}}
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

{{- define "actor-token-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object. The operator labels the Secrets it writes with
app.kubernetes.io/managed-by=actor-token-operator; the chart's objects carry Helm's value.
*/}}
{{- define "actor-token-operator.labels" -}}
helm.sh/chart: {{ include "actor-token-operator.chart" . }}
{{ include "actor-token-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "actor-token-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "actor-token-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "actor-token-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "actor-token-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "actor-token-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the operator does to namespaced objects, wherever it serves requests: all namespaces
(in a ClusterRole) or each of watchNamespaces (in a Role there). Each rule names the code
that needs it.
*/}}
{{- define "actor-token-operator.namespacedRules" -}}
# Watch requests (runtime/controllers.rs), read one afresh before minting and after a
# conflict, and add and remove the finalizer with a merge patch (reconcile/apply/mod.rs,
# status.rs). The spec is never written.
- apiGroups: ["actortokens.dev"]
  resources: ["actortokenrequests"]
  verbs: ["get", "list", "watch", "patch"]
# The virtual verb that makes the operator the operator to the admission policies (see
# src/admission/cel.rs `is_operator`): only it writes a request's status freely, and it never
# approves. Grant it to nobody else.
- apiGroups: ["actortokens.dev"]
  resources: ["actortokenrequests"]
  verbs: ["issue"]
# Finished requests are deleted where their instance sets deleteFinishedAfter
# (reconcile/apply/cleanup.rs).
- apiGroups: ["actortokens.dev"]
  resources: ["actortokenrequests"]
  verbs: ["delete"]
# The status is replaced at the resourceVersion the decision was made on (PUT,
# reconcile/apply/status.rs).
- apiGroups: ["actortokens.dev"]
  resources: ["actortokenrequests/status"]
  verbs: ["update"]
# Watch instances and resolve a request's instance (reconcile/instance.rs), and report each
# instance's Ready condition with a server-side apply patch (reconcile/instance_status.rs).
- apiGroups: ["actortokens.dev"]
  resources: ["clerkinstances"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["actortokens.dev"]
  resources: ["clerkinstances/status"]
  verbs: ["patch"]
# The link Secrets: created and deleted, never updated (reconcile/apply/secrets.rs), and
# watched. The watch is filtered by the label app.kubernetes.io/managed-by=actor-token-operator
# in the code, but RBAC can't express a label selector: this grants get/list/watch of every
# Secret in scope, which also covers reading ClerkInstances' key Secrets. The Secrets' owner
# references set no blockOwnerDeletion, so no update on actortokenrequests/finalizers.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Events about requests (Issued, Expired, SecretDeleted, ...) in the request's namespace;
# kube's event recorder patches an event that repeats.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* What the operator does to cluster-scoped objects, whatever watchNamespaces says. */}}
{{- define "actor-token-operator.clusterRules" -}}
# Before each mint, ask whether the requester may `use` the instance and the approver may
# `approve` on it (governance/access.rs).
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
# A ClusterClerkInstance's namespaceSelector is matched against the request's namespace's
# labels (governance/judge.rs).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
# Watch and resolve ClusterClerkInstances, and report their Ready condition.
- apiGroups: ["actortokens.dev"]
  resources: ["clusterclerkinstances"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["actortokens.dev"]
  resources: ["clusterclerkinstances/status"]
  verbs: ["patch"]
{{- end }}

{{/*
What the operator does in its own (the release) namespace when watchNamespaces is set (with
all namespaces, the ClusterRole covers it).
*/}}
{{- define "actor-token-operator.operatorNamespaceRules" -}}
# ClusterClerkInstances' key Secrets are read by name (reconcile/instance.rs,
# instance_status.rs), and so is the token seal key (runtime/seal_key.rs), which the first
# replica creates if it is missing: RBAC can't limit create to one name. Nothing is listed,
# updated or deleted here.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create"]
{{- end }}
