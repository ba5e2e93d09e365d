{{/* Short name of the chart, overridable with nameOverride. */}}
{{- define "kpt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects: fullnameOverride, or "<release>-<name>" (just "<release>" when the release
name already contains the chart name). Kept within the 63 characters a label value allows.
*/}}
{{- define "kpt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "kpt.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of the cluster-scoped objects (ClusterRole, ClusterRoleBinding). They carry the release namespace too, so
two releases with the same name in different namespaces do not fight over one ClusterRole.
*/}}
{{- define "kpt.clusterName" -}}
{{- printf "%s-%s" (include "kpt.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "kpt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the controller pods; never change them after a release exists (selectors are immutable). */}}
{{- define "kpt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kpt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels of every object. */}}
{{- define "kpt.labels" -}}
helm.sh/chart: {{ include "kpt.chart" . }}
{{ include "kpt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubeless-pulsar-trigger
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object (commonAnnotations), or nothing; include right after the labels. */}}
{{- define "kpt.metadataAnnotations" -}}
{{- with .Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "kpt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kpt.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from a repository and a tag (empty: the chart's appVersion): "repo:tag", or "repo@sha256:..."
when the tag is a digest (values.schema.json allows both).
*/}}
{{- define "kpt.imageRef" -}}
{{- $tag := default .appVersion .tag -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" .repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "kpt.controllerImage" -}}
{{- include "kpt.imageRef" (dict "repository" .Values.image.repository "tag" .Values.image.tag "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{- define "kpt.dispatcherImage" -}}
{{- include "kpt.imageRef" (dict "repository" .Values.dispatcher.deployment.image "tag" .Values.dispatcher.deployment.tag "appVersion" .Chart.AppVersion) -}}
{{- end -}}

{{/*
The labels every dispatcher pod carries whatever its trigger's spec.deployment says (src/trigger/render.ts), and no
controller pod does: what the PodMonitor selects.
*/}}
{{- define "kpt.dispatcherSelectorLabels" -}}
app.kubernetes.io/name: kubeless-pulsar-trigger
app.kubernetes.io/component: dispatcher
app.kubernetes.io/managed-by: kubeless-pulsar-trigger
{{- end -}}

{{/* A PromQL label matcher on the watched namespaces (namespace=~"a|b"), or nothing when every one is watched. */}}
{{- define "kpt.namespaceMatcher" -}}
{{- with (.Values.controller.watchNamespaces | uniq) -}}
namespace=~"{{ join "|" . }}"
{{- end -}}
{{- end -}}

{{- define "kpt.leaseName" -}}
{{- default (include "kpt.fullname" .) .Values.controller.leaderElection.leaseName -}}
{{- end -}}

{{/* The namespaces the controller watches, as a list; empty means all. Duplicates removed. */}}
{{- define "kpt.watchNamespaces" -}}
{{- toJson (uniq .Values.controller.watchNamespaces) -}}
{{- end -}}

{{/*
What the controller calls in the namespaces it watches (src/controller/kube.ts, controller.ts), and nothing more:
- PulsarTriggers: list and watch them; patch their finalizers and their status; update on pulsartriggers/finalizers
  lets it set blockOwnerDeletion in the ownerReferences of the objects it creates for a trigger.
- Deployments: the dispatcher of each trigger; listed and watched (label-selected), created, applied, deleted.
- Secrets: never listed or watched. The controller owns one Secret per trigger with an inline token: it creates,
  applies and deletes it, and gets it by name to compare it with the trigger. It also gets, by name, the Secrets a
  trigger refers to (authTokenSecretRef, TLS) to report a missing one in the trigger's status. RBAC cannot narrow
  get to names unknown in advance, so get still covers every Secret where the rule applies: cluster-wide with the
  default ClusterRole. Set controller.watchNamespaces to confine it (and everything else) to those namespaces.
- ConfigMaps: get only, to check that a trigger's TLS CA ConfigMap exists.
- Events: reported on triggers (core; events.k8s.io for newer recorders).
- KEDA's ScaledObjects and TriggerAuthentications (spec.autoscaling): written with server-side apply (create and
  patch) and deleted when autoscaling is turned off; never read or listed. Granted whether or not KEDA is installed.
*/}}
{{- define "kpt.watchedNamespaceRules" -}}
- apiGroups: ["kubeless.io"]
  resources: ["pulsartriggers"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["kubeless.io"]
  resources: ["pulsartriggers/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["kubeless.io"]
  resources: ["pulsartriggers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects", "triggerauthentications"]
  verbs: ["create", "patch", "delete"]
{{- end -}}


{{/*
Namespaces: read for the kubeless.io/accept-triggers-from annotation, with which a namespace accepts Deployments of
triggers in other namespaces (src/controller/placement.ts). The controller lists and watches them (an informer) and
never gets one by name, so get is not granted; it never writes one.
*/}}
{{- define "kpt.namespaceRule" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}
