{{- define "mimamori.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mimamori.fullname" -}}
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

{{- define "mimamori.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mimamori.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mimamori.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mimamori.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "mimamori.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mimamori.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mimamori.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "mimamori.clickhouseSecret" -}}
{{- .Values.clickhouse.existingSecret | default (printf "%s-clickhouse" (include "mimamori.fullname" .)) }}
{{- end }}

{{- define "mimamori.smtpSecret" -}}
{{- .Values.smtp.existingSecret | default (printf "%s-smtp" (include "mimamori.fullname" .)) }}
{{- end }}

{{- define "mimamori.kafkaSecret" -}}
{{- .Values.kafka.sasl.existingSecret | default (printf "%s-kafka" (include "mimamori.fullname" .)) }}
{{- end }}

{{- define "mimamori.kafkaCaDir" -}}/etc/mimamori-kafka-ca{{- end }}

{{/* The brokers' CA from its Secret, for the pods of the worker and the gateway (volumeMounts and volumes items). */}}
{{- define "mimamori.kafkaCaMount" -}}
{{- if and (ne .Values.kafka.security "plaintext") .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: {{ include "mimamori.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "mimamori.kafkaCaVolume" -}}
{{- if and (ne .Values.kafka.security "plaintext") .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    items:
      - key: {{ .Values.kafka.tls.caSecretKey }}
        path: {{ .Values.kafka.tls.caSecretKey }}
{{- end }}
{{- end }}

{{/* MIMAMORI_KAFKA_SECURITY and, with it, the SASL user, its password (from a Secret) and the CA file. */}}
{{- define "mimamori.kafkaSecurityEnv" -}}
{{- $k := .Values.kafka -}}
- name: MIMAMORI_KAFKA_SECURITY
  value: {{ $k.security | quote }}
{{- if eq $k.security "sasl_ssl" }}
- name: MIMAMORI_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: MIMAMORI_KAFKA_USERNAME
  value: {{ required "kafka.sasl.username is required with kafka.security sasl_ssl" $k.sasl.username | quote }}
- name: MIMAMORI_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mimamori.kafkaSecret" . }}
      key: {{ $k.sasl.existingSecretKey }}
{{- end }}
{{- if and (ne $k.security "plaintext") $k.tls.caSecret }}
- name: MIMAMORI_KAFKA_CA_FILE
  value: {{ printf "%s/%s" (include "mimamori.kafkaCaDir" .) $k.tls.caSecretKey | quote }}
{{- end }}
{{- end }}

{{- define "mimamori.rulesConfigMap" -}}
{{- .Values.rules.existingConfigMap | default (printf "%s-rules" (include "mimamori.fullname" .)) }}
{{- end }}

{{- define "mimamori.workdir" -}}/var/lib/mimamori{{- end }}

{{/* MIMAMORI_CLICKHOUSE; the password comes from the env entry CLICKHOUSE_PASSWORD, which must precede it. */}}
{{- define "mimamori.storeEnv" -}}
{{- $ch := .Values.clickhouse -}}
{{- if $ch.embedded.enabled }}
- name: MIMAMORI_CLICKHOUSE
  value: {{ printf "chdb://%s/clickhouse" (include "mimamori.workdir" .) | quote }}
{{- else }}
- name: CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mimamori.clickhouseSecret" . }}
      key: {{ $ch.existingSecretKey }}
- name: MIMAMORI_CLICKHOUSE
  value: {{ printf "clickhouse://%s:$(CLICKHOUSE_PASSWORD)@%s:%v/%s%s" $ch.user $ch.host $ch.port $ch.database (ternary (printf "?%s" $ch.params) "" (ne $ch.params "")) | quote }}
{{- end }}
- name: MIMAMORI_TZ
  value: {{ .Values.config.tz | quote }}
{{- end }}

{{/* Every MIMAMORI_* setting of the worker. */}}
{{- define "mimamori.env" -}}
{{ include "mimamori.storeEnv" . | trim }}
- name: MIMAMORI_KAFKA
  value: {{ .Values.kafka.bootstrap | quote }}
- name: MIMAMORI_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
{{ include "mimamori.kafkaSecurityEnv" . }}
- name: MIMAMORI_SMTP
  valueFrom:
    secretKeyRef:
      name: {{ include "mimamori.smtpSecret" . }}
      key: {{ .Values.smtp.existingSecretKey }}
- name: MIMAMORI_DEDUP_WINDOW
  value: {{ .Values.config.dedupWindow | quote }}
- name: MIMAMORI_CORRELATION_WINDOW
  value: {{ .Values.config.correlationWindow | quote }}
- name: MIMAMORI_MAIL_GROUP_WAIT
  value: {{ .Values.config.mailGroupWait | quote }}
- name: MIMAMORI_MAIL_GROUP_INTERVAL
  value: {{ .Values.config.mailGroupInterval | quote }}
- name: MIMAMORI_MAIL_URGENT_WAIT
  value: {{ .Values.config.mailUrgentWait | quote }}
- name: MIMAMORI_HEARTBEAT_TIMEOUT
  value: {{ .Values.config.heartbeatTimeout | quote }}
- name: MIMAMORI_HEARTBEAT_DAILY_AT
  value: {{ .Values.config.heartbeatDailyAt | quote }}
- name: MIMAMORI_WEB_PORT
  value: {{ .Values.config.webPort | quote }}
- name: MIMAMORI_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: MIMAMORI_REPORT_AT
  value: {{ .Values.config.reportAt | quote }}
- name: MIMAMORI_REPORT_MAIL_RATE
  value: {{ .Values.config.reportMailRate | quote }}
- name: MIMAMORI_NOTICE_MAIL_RATE
  value: {{ .Values.config.noticeMailRate | quote }}
- name: MIMAMORI_MAX_POLL_INTERVAL
  value: {{ .Values.config.maxPollInterval | quote }}
- name: MIMAMORI_MAIL_GIVE_UP
  value: {{ .Values.config.mailGiveUp | quote }}
{{- if .Values.rules.enabled }}
- name: MIMAMORI_RULES
  value: /etc/mimamori/{{ .Values.rules.key }}
{{- end }}
{{- end }}

{{- define "mimamori.gatewaySecret" -}}
{{- .Values.gateway.existingSecret | default (printf "%s-gateway" (include "mimamori.fullname" .)) }}
{{- end }}

{{/* Every MIMAMORI_* setting of the gateway (the worker's are above). */}}
{{- define "mimamori.gatewayEnv" -}}
- name: MIMAMORI_KAFKA
  value: {{ .Values.kafka.bootstrap | quote }}
- name: MIMAMORI_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
{{ include "mimamori.kafkaSecurityEnv" . }}
- name: MIMAMORI_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: MIMAMORI_GATEWAY_PORT
  value: {{ .Values.gateway.port | quote }}
- name: MIMAMORI_GATEWAY_MAX_BODY
  value: {{ .Values.gateway.maxBody | quote }}
- name: MIMAMORI_GATEWAY_ACK_TIMEOUT
  value: {{ .Values.gateway.ackTimeout | quote }}
- name: MIMAMORI_GATEWAY_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mimamori.gatewaySecret" . }}
      key: {{ .Values.gateway.existingSecretKey }}
{{- if .Values.gateway.tls.secretName }}
- name: MIMAMORI_GATEWAY_TLS_CERT
  value: /etc/mimamori/tls/tls.crt
- name: MIMAMORI_GATEWAY_TLS_KEY
  value: /etc/mimamori/tls/tls.key
{{- end }}
{{- end }}

{{/* A MIMAMORI_* duration (500ms, 30s, 5m, 1h, 1d) in whole seconds (ms rounded down). */}}
{{- define "mimamori.seconds" -}}
{{- $d := toString . -}}
{{- if hasSuffix "ms" $d -}}{{ div (trimSuffix "ms" $d | int) 1000 }}
{{- else if hasSuffix "s" $d -}}{{ trimSuffix "s" $d | int }}
{{- else if hasSuffix "m" $d -}}{{ mul (trimSuffix "m" $d | int) 60 }}
{{- else if hasSuffix "h" $d -}}{{ mul (trimSuffix "h" $d | int) 3600 }}
{{- else if hasSuffix "d" $d -}}{{ mul (trimSuffix "d" $d | int) 86400 }}
{{- else -}}{{ fail (printf "not a duration: %s" $d) }}
{{- end -}}
{{- end }}

{{/* The notification objective: a ★★★ mail handed to SMTP within MIMAMORI_MAIL_URGENT_WAIT + 1 s,
as the `le` label of the worker's mimamori_alert_to_smtp_seconds bucket (whole seconds 1-30). */}}
{{- define "mimamori.noticeObjectiveLe" -}}
{{- $s := add1 (include "mimamori.seconds" .Values.config.mailUrgentWait | int) -}}
{{- if gt $s 30 -}}
{{- fail (printf "config.mailUrgentWait %s: the notification objective (urgent wait + 1 s = %ds) must be at most 30 s, the last whole-second bucket of mimamori_alert_to_smtp_seconds" .Values.config.mailUrgentWait $s) -}}
{{- end -}}
{{- printf "%d.0" $s -}}
{{- end }}

{{/* PromQL label matchers selecting this release's workers (the job the ServiceMonitor gives them). */}}
{{- define "mimamori.metricSelector" -}}
{{- .Values.monitoring.prometheusRule.selector | default (printf "job=%q" (include "mimamori.fullname" .)) -}}
{{- end }}

{{- define "mimamori.portalSecret" -}}
{{- .Values.portal.existingSecret | default (printf "%s-portal" (include "mimamori.fullname" .)) }}
{{- end }}

{{/* Every MIMAMORI_* setting of the portal: the store, its port and its key. */}}
{{- define "mimamori.portalEnv" -}}
{{ include "mimamori.storeEnv" . | trim }}
- name: MIMAMORI_LOG_FORMAT
  value: {{ .Values.config.logFormat | quote }}
- name: MIMAMORI_PORTAL_PORT
  value: {{ .Values.portal.port | quote }}
- name: MIMAMORI_PORTAL_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mimamori.portalSecret" . }}
      key: {{ .Values.portal.existingSecretKey }}
{{- end }}
