{{/*
crackseg.name: the chart name (app.kubernetes.io/name), "crackseg" unless nameOverride is set.
*/}}
{{- define "crackseg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.fullname: the prefix of every resource name. A release already named like the chart is not repeated
("crackseg" rather than "crackseg-crackseg").
*/}}
{{- define "crackseg.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
crackseg.chart: chart name and version for the helm.sh/chart label.
*/}}
{{- define "crackseg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.labels: labels shared by every object of the release (no component).
*/}}
{{- define "crackseg.labels" -}}
helm.sh/chart: {{ include "crackseg.chart" . }}
app.kubernetes.io/name: {{ include "crackseg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crackseg
{{- end -}}

{{/*
crackseg.selectorLabels: the release's immutable selector labels (no component); the default-deny policy uses them.
*/}}
{{- define "crackseg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crackseg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
crackseg.component.labels: full labels of one component. Call with (dict "root" $ "component" "predictor").
*/}}
{{- define "crackseg.component.labels" -}}
{{ include "crackseg.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
crackseg.component.selectorLabels: selector labels of one component. Call with (dict "root" $ "component" "ui").
*/}}
{{- define "crackseg.component.selectorLabels" -}}
{{ include "crackseg.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
crackseg.image: the image reference of one component. Call with (dict "root" $ "image" .Values.predictor.image).
The tag falls back to image.tag, then to the chart's appVersion; a digest pins it.
*/}}
{{- define "crackseg.image" -}}
{{- $root := .root -}}
{{- $registry := $root.Values.global.imageRegistry -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString (.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{/*
crackseg.podSecurityContext: the restricted Pod Security Standard at pod level.
*/}}
{{- define "crackseg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
crackseg.containerSecurityContext: the restricted Pod Security Standard at container level, read-only root.
*/}}
{{- define "crackseg.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
crackseg.imagePullSecrets: pull secrets for every pod, when any are set.
*/}}
{{- define "crackseg.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
crackseg.predictor.fullname: the predictor's Deployment, Service or InferenceService name (the rollout target).
*/}}
{{- define "crackseg.predictor.fullname" -}}
{{- printf "%s-predictor" (include "crackseg.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.predictor.url: the in-cluster URL of the predictor. KServe Standard mode exposes
"<isvc>-predictor" on port 80; our own Service listens on the container port.
*/}}
{{- define "crackseg.predictor.url" -}}
{{- if .Values.predictor.kserve.enabled -}}
{{- printf "http://%s-predictor.%s.svc:80" (include "crackseg.predictor.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "crackseg.predictor.fullname" .) .Release.Namespace (int .Values.predictor.service.port) -}}
{{- end -}}
{{- end -}}

{{/*
crackseg.predictor.serviceAccountName: the predictor's ServiceAccount (no API access; token not mounted).
*/}}
{{- define "crackseg.predictor.serviceAccountName" -}}
{{- printf "%s-predictor" (include "crackseg.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.ui.fullname: the UI's Deployment and Service name.
*/}}
{{- define "crackseg.ui.fullname" -}}
{{- printf "%s-ui" (include "crackseg.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.mlflow.fullname: the MLflow Deployment, Service and PVC name.
*/}}
{{- define "crackseg.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "crackseg.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.mlflow.url: the tracking URI every component uses (in-cluster Service, or mlflow.externalUrl).
*/}}
{{- define "crackseg.mlflow.url" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "crackseg.mlflow.fullname" .) .Release.Namespace (int .Values.mlflow.service.port) -}}
{{- else -}}
{{- required "mlflow.externalUrl is required when mlflow.enabled is false" .Values.mlflow.externalUrl -}}
{{- end -}}
{{- end -}}

{{/*
crackseg.storage.claimName: the PVC name of one volume. Call with (dict "root" $ "volume" "feedback").
*/}}
{{- define "crackseg.storage.claimName" -}}
{{- $p := index .root.Values.persistence .volume -}}
{{- if $p.existingClaim -}}
{{- $p.existingClaim -}}
{{- else -}}
{{- printf "%s-%s" (include "crackseg.fullname" .root) .volume | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
crackseg.retrain.triggerName: the trigger's CronJob and ServiceAccount name.
*/}}
{{- define "crackseg.retrain.triggerName" -}}
{{- printf "%s-retrain-trigger" (include "crackseg.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.retrain.fullname: the retraining Job's name prefix, ServiceAccount and Role name.
*/}}
{{- define "crackseg.retrain.fullname" -}}
{{- printf "%s-retrain" (include "crackseg.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.retrain.jobTemplateName: the ConfigMap holding the Job manifest the trigger creates.
*/}}
{{- define "crackseg.retrain.jobTemplateName" -}}
{{- printf "%s-retrain-job-template" (include "crackseg.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
crackseg.retrain.rollout: how a promoted model reaches the predictor (CRACKSEG_ROLLOUT).
*/}}
{{- define "crackseg.retrain.rollout" -}}
{{- if .Values.predictor.kserve.enabled -}}inferenceservice{{- else -}}deployment{{- end -}}
{{- end -}}

{{/*
crackseg.auth.tokenEnv: CRACKSEG_API_TOKEN from an existing Secret, when auth.existingSecret is set.
*/}}
{{- define "crackseg.auth.tokenEnv" -}}
{{- if .Values.auth.existingSecret }}
- name: CRACKSEG_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret }}
      key: {{ .Values.auth.secretKey }}
{{- end }}
{{- end -}}

{{/*
crackseg.validate: render-time checks for unsafe or inconsistent settings.
*/}}
{{- define "crackseg.validate" -}}
{{- $uri := .Values.mlflow.backendStore.uri | default "" -}}
{{- if regexMatch "://[^/@]*:[^/@]*@" $uri -}}
{{- fail "mlflow.backendStore.uri holds a password in plain text: put the URI in a Secret and set mlflow.backendStore.existingSecret" -}}
{{- end -}}
{{- if and .Values.predictor.kserve.enabled .Values.predictor.autoscaling.enabled -}}
{{- fail "predictor.autoscaling is for the plain Deployment: with predictor.kserve.enabled use predictor.kserve.minReplicas/maxReplicas" -}}
{{- end -}}
{{- $many := or (gt (int .Values.predictor.replicas) 1) .Values.predictor.autoscaling.enabled (gt (int .Values.predictor.kserve.maxReplicas) 1) -}}
{{- if and $many (has "ReadWriteOnce" .Values.persistence.feedback.accessModes) (not .Values.persistence.singleNode) -}}
{{- fail "several predictor replicas share the feedback volume: use ReadWriteMany (persistence.feedback.accessModes) or set persistence.singleNode=true on a one-node cluster" -}}
{{- end -}}
{{- end -}}
