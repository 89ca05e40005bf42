{{/*
crackseg.predictor.container: the predictor container, shared by the Deployment and the InferenceService so both
modes run the same command, env, volumes and probes.
*/}}
{{- define "crackseg.predictor.container" -}}
image: {{ include "crackseg.image" (dict "root" . "image" .Values.predictor.image) }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
# $(CRACKSEG_MODEL_SOURCE) is expanded by the kubelet, so a rollout only patches the env var.
args: ["serve", "--model", "$(CRACKSEG_MODEL_SOURCE)", "--port", "8000"]
ports:
  - name: http
    containerPort: 8000
    protocol: TCP
env:
  {{- if and .Values.predictor.kserve.enabled .Values.predictor.kserve.storageUri }}
  # KServe mounts or downloads STORAGE_URI at /mnt/models; the retraining rollout rewrites STORAGE_URI.
  - name: STORAGE_URI
    value: {{ .Values.predictor.kserve.storageUri | quote }}
  - name: CRACKSEG_MODEL_SOURCE
    value: /mnt/models
  {{- else }}
  - name: CRACKSEG_MODEL_SOURCE
    value: {{ .Values.predictor.model.source | quote }}
  {{- end }}
  - name: CRACKSEG_MODEL_VERSION
    value: {{ .Values.predictor.model.version | quote }}
  - name: CRACKSEG_MODEL_CACHE_DIR
    value: /var/cache/crackseg
  - name: CRACKSEG_FEEDBACK_DIR
    value: /data/feedback
  - name: CRACKSEG_MODELS_DIR
    value: /data/models
  - name: CRACKSEG_RETRAIN_THRESHOLD
    value: {{ .Values.retrainThreshold | quote }}
  - name: CRACKSEG_HTTP_PORT
    value: "8000"
  - name: CRACKSEG_THREADS
    value: {{ .Values.predictor.threads | quote }}
  # The CPU limit in whole cores (rounded up), so the predictor sizes its thread pools to what it may use.
  - name: CRACKSEG_CPU_LIMIT
    valueFrom:
      resourceFieldRef:
        resource: limits.cpu
        divisor: "1"
  - name: MLFLOW_TRACKING_URI
    value: {{ include "crackseg.mlflow.url" . | quote }}
  # PyTorch's busy-waiting OpenMP threads starve co-located pods on shared CPUs.
  - name: OMP_WAIT_POLICY
    value: PASSIVE
  - name: HOME
    value: /tmp
{{- include "crackseg.auth.tokenEnv" . | nindent 2 }}
startupProbe:
  httpGet:
    path: /v2/health/live
    port: http
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: http
  periodSeconds: 15
  timeoutSeconds: 5
  failureThreshold: 4
# Ready means a model is loaded: no traffic reaches a pod still loading or swapping its model.
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
resources:
  {{- toYaml .Values.predictor.resources | nindent 2 }}
securityContext:
  {{- include "crackseg.containerSecurityContext" . | nindent 2 }}
volumeMounts:
  - name: feedback
    mountPath: /data/feedback
  - name: models
    mountPath: /data/models
    readOnly: true
  - name: model-cache
    mountPath: /var/cache/crackseg
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{/*
crackseg.predictor.volumes: the predictor's volumes (feedback is written, promoted models only read).
*/}}
{{- define "crackseg.predictor.volumes" -}}
- name: feedback
  persistentVolumeClaim:
    claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "feedback") }}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "models") }}
    readOnly: true
- name: model-cache
  emptyDir:
    sizeLimit: 2Gi
- name: tmp
  emptyDir:
    sizeLimit: 512Mi
{{- end -}}


{{/*
crackseg.predictor.initContainers: before the predictor starts, make sure the registry has a champion (the starter
model baked into the image becomes version 1 when the registry is empty), so `models:/crackseg@champion` resolves on
a fresh cluster. The served version's pointer is that alias: it lives with the models, not in values.
*/}}
{{- define "crackseg.predictor.initContainers" -}}
{{- if and .Values.predictor.model.bootstrap.enabled (hasPrefix "models:/" .Values.predictor.model.source) }}
- name: bootstrap-champion
  image: {{ include "crackseg.image" (dict "root" . "image" .Values.predictor.image) }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python3", "-c"]
  args:
    - |
      import sys
      from pathlib import Path
      from services.up.bootstrap import ensure_champion
      version = ensure_champion(sys.argv[1], Path(sys.argv[2]), retries=30)
      print(f"registry champion: version {version}")
    - {{ include "crackseg.mlflow.url" . | quote }}
    - {{ .Values.predictor.model.bootstrap.starterDir | quote }}
  env:
    - name: HOME
      value: /tmp
  resources:
    {{- toYaml .Values.predictor.resources | nindent 4 }}
  securityContext:
    {{- include "crackseg.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}
{{- end -}}
