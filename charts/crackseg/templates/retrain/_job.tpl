{{/*
crackseg.retrain.job: the retraining Job manifest. The chart renders it once into a ConfigMap; the trigger loads it,
names it <run>-<attempt>, merges its labels and creates it, so the chart is the one source of truth.
*/}}
{{- define "crackseg.retrain.job" -}}
apiVersion: batch/v1
kind: Job
metadata:
  # Placeholder: the trigger names each attempt <run>-<attempt> (services/retrain/jobtemplate.py).
  name: {{ include "crackseg.retrain.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "crackseg.component.labels" (dict "root" . "component" "retrain") | nindent 4 }}
  annotations:
    # Attempts of one run before the trigger stops relaunching it (bounded history after failures).
    crackseg.io/max-attempts: {{ .Values.retrain.job.maxAttempts | quote }}
spec:
  backoffLimit: {{ .Values.retrain.job.backoffLimit }}
  activeDeadlineSeconds: {{ .Values.retrain.job.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ .Values.retrain.job.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "crackseg.component.labels" (dict "root" . "component" "retrain") | nindent 8 }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "crackseg.retrain.fullname" . }}
      {{- with include "crackseg.imagePullSecrets" . }}{{ . | nindent 6 }}{{- end }}
      securityContext:
        {{- include "crackseg.podSecurityContext" . | nindent 8 }}
      containers:
        - name: retrain
          image: {{ include "crackseg.image" (dict "root" . "image" .Values.retrain.image) }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args: ["retrain", "run"]
          env:
            - name: CRACKSEG_FEEDBACK_DIR
              value: /data/feedback
            - name: CRACKSEG_MODELS_DIR
              value: /data/models
            - name: CRACKSEG_DVC_REMOTE
              value: /data/dvc-storage
            - name: CRACKSEG_BASE_DATA
              value: /data/base
            - name: CRACKSEG_EVAL_DATA
              value: /data/eval
            - name: CRACKSEG_RETRAIN_THRESHOLD
              value: {{ .Values.retrainThreshold | quote }}
            - name: CRACKSEG_ROLLOUT
              value: {{ include "crackseg.retrain.rollout" . }}
            - name: CRACKSEG_PREDICTOR_NAME
              value: {{ include "crackseg.predictor.fullname" . }}
            # InferenceService rollout: KServe mounts this PVC path at /mnt/models in the predictor.
            - name: CRACKSEG_STORAGE_URI_TEMPLATE
              value: {{ printf "pvc://%s/v{version}" (include "crackseg.storage.claimName" (dict "root" . "volume" "models")) | quote }}
            - name: CRACKSEG_PREDICTOR_URL
              value: {{ include "crackseg.predictor.url" . | quote }}
            - name: CRACKSEG_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            # The run labels its own Job with the outcome; attempts of one run have distinct Job names.
            - name: CRACKSEG_JOB_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.labels['batch.kubernetes.io/job-name']
            {{- if .Values.retrain.job.params }}
            - name: CRACKSEG_RETRAIN_PARAMS
              value: /etc/crackseg/params/params.yaml
            {{- end }}
            # DVC's site cache defaults to /var/tmp/dvc, on the read-only root filesystem.
            - name: DVC_SITE_CACHE_DIR
              value: /tmp/dvc-site-cache
            - name: MLFLOW_TRACKING_URI
              value: {{ include "crackseg.mlflow.url" . | quote }}
            - name: OMP_WAIT_POLICY
              value: PASSIVE
            - name: HOME
              value: /tmp
            {{- include "crackseg.auth.tokenEnv" . | nindent 12 }}
            {{- with .Values.retrain.job.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            {{- $res := deepCopy .Values.retrain.job.resources }}
            {{- if .Values.retrain.job.gpu.enabled }}
            {{- $gpu := dict .Values.retrain.job.gpu.resourceName (toString .Values.retrain.job.gpu.count) }}
            {{- $_ := set $res "limits" (merge (deepCopy (default dict $res.limits)) $gpu) }}
            {{- $_ := set $res "requests" (merge (deepCopy (default dict $res.requests)) $gpu) }}
            {{- end }}
            {{- toYaml $res | nindent 12 }}
          securityContext:
            {{- include "crackseg.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: feedback
              mountPath: /data/feedback
            - name: models
              mountPath: /data/models
            - name: dvc-storage
              mountPath: /data/dvc-storage
            - name: datasets
              mountPath: /data/base
              subPath: base
              readOnly: true
            - name: datasets
              mountPath: /data/eval
              subPath: eval
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if .Values.retrain.job.params }}
            - name: params
              mountPath: /etc/crackseg/params
              readOnly: true
            {{- end }}
      volumes:
        - name: feedback
          persistentVolumeClaim:
            claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "feedback") }}
        - name: models
          persistentVolumeClaim:
            claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "models") }}
        - name: dvc-storage
          persistentVolumeClaim:
            claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "dvc") }}
        - name: datasets
          persistentVolumeClaim:
            claimName: {{ include "crackseg.storage.claimName" (dict "root" . "volume" "datasets") }}
            readOnly: true
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.retrain.job.scratchSize }}
        {{- if .Values.retrain.job.params }}
        - name: params
          configMap:
            name: {{ include "crackseg.retrain.jobTemplateName" . }}
            items:
              - key: params.yaml
                path: params.yaml
        {{- end }}
      {{- with .Values.retrain.job.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.retrain.job.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
