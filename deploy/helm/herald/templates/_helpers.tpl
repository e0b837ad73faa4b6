{{/* The chart's name, or nameOverride. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: fullnameOverride, or the release
name when it contains the chart's name, or RELEASE-herald.
*/}}
{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ include "herald.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods; they never change. */}}
{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag or the chart's appVersion; never "latest". */}}
{{- define "herald.imageTag" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: \"latest\" is refused; name a version tag (or image.digest)" }}
{{- end }}
{{- $tag }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "herald.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
"true" when herald uses an external NATS cluster: queue.external, or a
queue.url in the chart's config; "" for the embedded queue.
*/}}
{{- define "herald.externalQueue" -}}
{{- $queue := default (dict) .Values.config.queue }}
{{- if or .Values.queue.external $queue.url }}true{{ end }}
{{- end }}

{{/* "true" when the chart renders `config` into an object of its own. */}}
{{- define "herald.ownConfig" -}}
{{- if not (or .Values.existingConfig.configMapName .Values.existingConfig.secretName) }}true{{ end }}
{{- end }}

{{/* herald.yml as the chart renders it from `config`, ending in a newline. */}}
{{- define "herald.configYAML" -}}
{{- toYaml .Values.config }}
{{ end }}

{{/* "true" when herald.yml is in a Secret, "" when in a ConfigMap. */}}
{{- define "herald.configIsSecret" -}}
{{- if include "herald.ownConfig" . }}
{{- if eq .Values.configKind "Secret" }}true{{ end }}
{{- else if .Values.existingConfig.secretName }}true
{{- end }}
{{- end }}

{{/* The name of the object holding herald.yml. */}}
{{- define "herald.configName" -}}
{{- if .Values.existingConfig.configMapName }}
{{- .Values.existingConfig.configMapName }}
{{- else if .Values.existingConfig.secretName }}
{{- .Values.existingConfig.secretName }}
{{- else }}
{{- printf "%s-config" (include "herald.fullname" .) }}
{{- end }}
{{- end }}

{{/* The key of herald.yml in that object. */}}
{{- define "herald.configKey" -}}
{{- if include "herald.ownConfig" . }}herald.yml{{ else }}{{ .Values.existingConfig.key }}{{ end }}
{{- end }}

{{/*
Refuses value combinations that would deploy a broken or unsafe herald;
included by the workload templates.
*/}}
{{- define "herald.validate" -}}
{{- if and .Values.existingConfig.configMapName .Values.existingConfig.secretName }}
{{- fail "existingConfig: set configMapName or secretName, not both" }}
{{- end }}
{{- if not (has .Values.configKind (list "ConfigMap" "Secret")) }}
{{- fail (printf "configKind: %q is neither ConfigMap nor Secret" .Values.configKind) }}
{{- end }}
{{- $queue := default (dict) .Values.config.queue }}
{{- if and .Values.queue.external (not $queue.url) (include "herald.ownConfig" .) }}
{{- fail "queue.external is true but config.queue.url is not set: name the NATS cluster in config.queue.url" }}
{{- end }}
{{- if and (not (include "herald.externalQueue" .)) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount: %d replicas need an external NATS cluster (config.queue.url); the embedded queue runs one herald per data dir" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}

{{/* The pod template shared by the StatefulSet and the Deployment. */}}
{{- define "herald.podTemplate" -}}
metadata:
  labels:
    {{- include "herald.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := dict }}
  {{- if include "herald.ownConfig" . }}
  {{- $_ := set $annotations "checksum/config" (include "herald.configYAML" . | sha256sum) }}
  {{- end }}
  {{- $annotations = merge $annotations (default (dict) .Values.podAnnotations) }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "herald.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: herald
      image: {{ include "herald.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - -config
        - /etc/herald/herald.yml
        - -listen
        - {{ printf ":%d" (int .Values.containerPort) | quote }}
        - -data-dir
        - /var/lib/herald
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      {{- with .Values.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/herald
          readOnly: true
        {{- if .Values.secrets.secretName }}
        - name: secrets
          mountPath: {{ .Values.secrets.mountPath }}
          readOnly: true
        {{- end }}
        {{- if not (include "herald.externalQueue" .) }}
        - name: data
          mountPath: /var/lib/herald
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      {{- if include "herald.configIsSecret" . }}
      secret:
        secretName: {{ include "herald.configName" . }}
        items:
          - key: {{ include "herald.configKey" . }}
            path: herald.yml
      {{- else }}
      configMap:
        name: {{ include "herald.configName" . }}
        items:
          - key: {{ include "herald.configKey" . }}
            path: herald.yml
      {{- end }}
    {{- if .Values.secrets.secretName }}
    - name: secrets
      secret:
        secretName: {{ .Values.secrets.secretName }}
    {{- end }}
    {{- if and (not (include "herald.externalQueue" .)) (not .Values.persistence.enabled) }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
