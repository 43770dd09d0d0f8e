{{/*
Naming and labels. Every object of a service is named <fullname>-<service>; `ctx` below is
always (dict "root" $ "name" <service key> "svc" <service values>).
*/}}

{{- define "identity-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "identity-platform.fullname" -}}
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

{{- define "identity-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries; takes the root context. */}}
{{- define "identity-platform.labels" -}}
helm.sh/chart: {{ include "identity-platform.chart" . }}
{{ include "identity-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: identity-platform
{{- end }}

{{- define "identity-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "identity-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* <fullname>-<name>; takes (dict "root" $ "name" <component>). */}}
{{- define "identity-platform.componentName" -}}
{{- printf "%s-%s" (include "identity-platform.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "identity-platform.componentLabels" -}}
{{ include "identity-platform.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "identity-platform.componentSelectorLabels" -}}
{{ include "identity-platform.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* In-cluster base URL of a service, e.g. http://release-identity-platform-users */}}
{{- define "identity-platform.serviceUrl" -}}
{{- printf "http://%s" (include "identity-platform.componentName" .) }}
{{- end }}

{{/* registry/prefix/<service>:tag unless the service sets its own repository. */}}
{{- define "identity-platform.image" -}}
{{- $img := .root.Values.image -}}
{{- $own := .svc.image | default dict -}}
{{- $repository := $own.repository | default (printf "%s/%s" $img.repositoryPrefix .name) -}}
{{- if $img.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" $img.registry) $repository }}{{ end -}}
{{- $tag := $own.tag | default $img.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{- define "identity-platform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "identity-platform.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Which service calls which: the env suffix (after the service's prefix) and the service it
names. Fixed by the platform, not by an installation.
*/}}
{{- define "identity-platform.peers" -}}
auth:
  USERS_URL: users
  ORGS_URL: orgs
users:
  ORGS_URL: orgs
orgs:
  USERS_URL: users
{{- end }}

{{- define "identity-platform.signingKeysDir" -}}
/var/run/secrets/identity-platform/signing-keys
{{- end }}

{{/* The non-secret environment of a service as a YAML map (the ConfigMap's data). */}}
{{- define "identity-platform.configData" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $p := upper .name -}}
{{- $data := dict
  "PORT" "8000"
  (printf "%s_ENVIRONMENT" $p) $v.environment
  (printf "%s_JWT_ISSUER" $p) $v.jwt.issuer
  (printf "%s_JWT_AUDIENCE" $p) $v.jwt.audience
  (printf "%s_HTTP_TIMEOUT_SECONDS" $p) (toString $v.httpTimeoutSeconds)
  (printf "%s_DB_POOL_SIZE" $p) (toString $v.database.poolSize)
  (printf "%s_DB_MAX_OVERFLOW" $p) "0"
  (printf "%s_DB_POOL_TIMEOUT_SECONDS" $p) (toString $v.database.poolTimeoutSeconds)
  "OTEL_SERVICE_NAME" .name
  "PROMETHEUS_MULTIPROC_DIR" "/run/prometheus"
  (printf "%s_DATA_DIR" $p) "/tmp/data"
  "WEB_CONCURRENCY" (toString .svc.webConcurrency)
  "GUNICORN_GRACEFUL_TIMEOUT" (toString $v.gunicorn.gracefulTimeoutSeconds)
  "GUNICORN_KEEPALIVE" (toString $v.gunicorn.keepaliveSeconds)
  "GUNICORN_TIMEOUT" (toString $v.gunicorn.timeoutSeconds)
  (printf "%s_TRUSTED_PROXIES" $p) (join "," $v.trustedProxies)
  (printf "%s_CORS_ORIGINS" $p) (join "," $v.cors.origins)
  (printf "%s_RATE_LIMIT_ANONYMOUS" $p) $v.rateLimits.anonymous
  (printf "%s_RATE_LIMIT_USER" $p) $v.rateLimits.user
  (printf "%s_RATE_LIMIT_ADMIN" $p) $v.rateLimits.admin
  (printf "%s_RATE_LIMIT_SERVICE" $p) $v.rateLimits.service
  (printf "%s_REQUEST_TIMEOUT_SECONDS" $p) (toString $v.requestTimeoutSeconds)
  (printf "%s_MAX_REQUESTS_IN_FLIGHT" $p) (toString $v.maxRequestsInFlight)
  (printf "%s_EVENTS_STREAM_MAXLEN" $p) (toString $v.events.streamMaxLen)
  (printf "%s_EVENTS_RETENTION_DAYS" $p) (toString $v.events.retentionDays)
-}}
{{- if eq .name "orgs" }}
{{- $_ := set $data "ORGS_WEBHOOKS_ALLOW_PRIVATE" (toString $v.webhooks.allowPrivate) }}
{{- $_ := set $data "ORGS_WEBHOOKS_TIMEOUT_SECONDS" (toString $v.webhooks.timeoutSeconds) }}
{{- $_ := set $data "ORGS_WEBHOOKS_RETRY_PERIOD_SECONDS" (toString $v.webhooks.retryPeriodSeconds) }}
{{- end }}
{{- if ne .name "auth" }}
{{- $_ := set $data (printf "%s_JWKS_URL" $p) (printf "%s/api/v1/auth/jwks.json" (include "identity-platform.serviceUrl" (dict "root" $root "name" "auth"))) }}
{{- else }}
{{- $_ := set $data "AUTH_SIGNING_KEYS_DIR" (include "identity-platform.signingKeysDir" .) }}
{{- end }}
{{- range $suffix, $peer := get (include "identity-platform.peers" . | fromYaml) .name }}
{{- $_ := set $data (printf "%s_%s" $p $suffix) (include "identity-platform.serviceUrl" (dict "root" $root "name" $peer)) }}
{{- end }}
{{- with $v.opentelemetry.exporterOtlpEndpoint }}
{{- $_ := set $data "OTEL_EXPORTER_OTLP_ENDPOINT" . }}
{{- end }}
{{- with $v.opentelemetry.resourceAttributes }}
{{- $_ := set $data "OTEL_RESOURCE_ATTRIBUTES" . }}
{{- end }}
{{- if and (has .name (list "auth" "orgs")) $v.mail }}
{{- $m := $v.mail }}
{{- with $m.smtp.host }}
{{- $user := ternary (printf "%s@" (urlquery $m.smtp.username)) "" (ne ($m.smtp.username | default "") "") }}
{{- $_ := set $data (printf "%s_SMTP_URL" $p) (printf "%s://%s%s:%v" (ternary "smtps" "smtp" (eq $m.smtp.tlsMode "tls")) $user . $m.smtp.port) }}
{{- $_ := set $data (printf "%s_SMTP_TLS" $p) $m.smtp.tlsMode }}
{{- end }}
{{- $_ := set $data (printf "%s_MAIL_FROM" $p) $m.from }}
{{- $_ := set $data (printf "%s_MAIL_LINK_BASE_URL" $p) $m.linkBaseUrl }}
{{- end }}
{{- range $k, $val := merge (deepCopy (.svc.env | default dict)) ($v.env | default dict) }}
{{- $_ := set $data $k (toString $val) }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* Name of the Secret a service reads: its existingSecret, or the one this chart renders. */}}
{{- define "identity-platform.secretName" -}}
{{- .svc.existingSecret | default (include "identity-platform.componentName" .) }}
{{- end }}

{{/* Credentials of the in-cluster development PostgreSQL and Redis. */}}
{{- define "identity-platform.devCredentialsName" -}}
{{- include "identity-platform.componentName" (dict "root" . "name" "dev-credentials") }}
{{- end }}

{{/*
The data of a service's Secret (only when it has no existingSecret), as a YAML map of
key -> plain value. With devDependencies the database and Redis URLs point at the in-cluster
development servers; a generated signing key is kept across upgrades through lookup.
*/}}
{{- define "identity-platform.secretData" -}}
{{- $root := .root -}}
{{- $s := .svc.secrets | default dict -}}
{{- $dev := $root.Values.devDependencies -}}
{{- $data := dict -}}
{{- $host := include "identity-platform.componentName" (dict "root" $root "name" "postgres") -}}
{{- if $s.databaseUrl }}
{{- $_ := set $data "database-url" $s.databaseUrl }}
{{- else if $dev.enabled }}
{{- $pw := required "devDependencies.postgres.password is required with devDependencies.enabled" $dev.postgres.password }}
{{- $_ := set $data "database-url" (printf "postgresql+asyncpg://%s:%s@%s:5432/%s" .name (urlquery $pw) $host .name) }}
{{- end }}
{{- if $s.redisUrl }}
{{- $_ := set $data "redis-url" $s.redisUrl }}
{{- else if $dev.enabled }}
{{- $pw := required "devDependencies.redis.password is required with devDependencies.enabled" $dev.redis.password }}
{{- $_ := set $data "redis-url" (printf "redis://:%s@%s:6379/0" (urlquery $pw) (include "identity-platform.componentName" (dict "root" $root "name" "redis"))) }}
{{- end }}
{{- if and (has .name (list "auth" "orgs")) $root.Values.mail }}
{{- with $root.Values.mail.smtp.password }}{{ $_ := set $data "smtp-password" . }}{{ end }}
{{- end }}
{{- if eq .name "auth" }}
{{- with $s.serviceClients }}{{ $_ := set $data "service-clients" . }}{{ end }}
{{- with $s.platformAdminEmail }}{{ $_ := set $data "platform-admin-email" . }}{{ end }}
{{- with $s.platformAdminPassword }}{{ $_ := set $data "platform-admin-password" . }}{{ end }}
{{- range $file, $pem := $s.signingKeys | default dict }}
{{- $_ := set $data $file $pem }}
{{- end }}
{{- if and $s.generateSigningKey (not (hasKey $data "current.pem")) }}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "identity-platform.componentName" .) }}
{{- $previous := dig "data" "current.pem" "" ($existing | default dict) }}
{{- $_ := set $data "current.pem" (ternary (b64dec $previous) (genPrivateKey "ecdsa") (ne $previous "")) }}
{{- end }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/* env entries that read a service's secrets; migration adds the admin seed. */}}
{{- define "identity-platform.secretEnv" -}}
{{- $p := upper .name -}}
{{- $secret := .secretName -}}
- name: {{ $p }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: database-url
- name: {{ $p }}_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: redis-url
{{- if and (has .name (list "auth" "orgs")) (not .migration) }}
- name: {{ $p }}_SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: smtp-password
      optional: true
{{- end }}
{{- if eq .name "auth" }}
- name: AUTH_SERVICE_CLIENTS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: service-clients
      optional: true
{{- if .migration }}
- name: PLATFORM_ADMIN_EMAIL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: platform-admin-email
      optional: true
- name: PLATFORM_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: platform-admin-password
      optional: true
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret volume with auth's signing keys, only the *.pem keys it lists. */}}
{{- define "identity-platform.signingKeysVolume" -}}
- name: signing-keys
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
    items:
      {{- range .svc.signingKeyFiles }}
      - key: {{ . }}
        path: {{ . }}
      {{- end }}
{{- end }}

{{- define "identity-platform.signingKeysMount" -}}
- name: signing-keys
  mountPath: {{ include "identity-platform.signingKeysDir" . }}
  readOnly: true
{{- end }}

{{/* Scratch space: the root filesystem is read-only. */}}
{{- define "identity-platform.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "identity-platform.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "identity-platform.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "identity-platform.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* Grace period: preStop sleep + gunicorn's graceful timeout + a margin for the exit. */}}
{{- define "identity-platform.terminationGracePeriodSeconds" -}}
{{- add .Values.preStopSleepSeconds .Values.gunicorn.gracefulTimeoutSeconds 10 }}
{{- end }}

{{/* A hook annotation block; takes (dict "hook" ... "weight" ...). */}}
{{- define "identity-platform.hookAnnotations" -}}
helm.sh/hook: {{ .hook }}
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .deletePolicy | default "before-hook-creation,hook-succeeded" }}
{{- end }}
