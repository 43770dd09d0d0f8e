{{/*
SLO rules from .Values.metrics.slos, as YAML `groups:` (templates/prometheusrule.yaml adds
them to files/alerts.yaml's). For each service and window (5m 30m 1h 6h) two recording
rules, the share of API requests that spent the budget:
  identity_platform:slo_errors:ratio_rate<w>          answered 5xx
  identity_platform:slo_latency_misses:ratio_rate<w>  slower than the service's threshold
and the objectives (identity_platform:slo_{availability,latency}_objective:ratio),
and four alerts (Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate):
  IdentityPlatform{Availability,Latency}BudgetBurnFast   1h and 5m above 14.4x the budget
  IdentityPlatform{Availability,Latency}BudgetBurnSlow   6h and 30m above 6x the budget
The short window makes an alert stop soon after the burn does. Each rule names its `app` as
a label too (the value it has anyway), so no two rules are the same to promtool's lint.
*/}}
{{- define "identity-platform.sloGroups" -}}
{{- $api := `platform="identity-platform", handler!~"/livez|/readyz|/metrics"` }}
{{- $windows := list "5m" "30m" "1h" "6h" }}
{{- $burns := list (dict "name" "Fast" "long" "1h" "short" "5m" "factor" "14.4" "for" "2m" "severity" "critical" "share" "2% of it per hour")
                   (dict "name" "Slow" "long" "6h" "short" "30m" "factor" "6" "for" "15m" "severity" "warning" "share" "5% of it per six hours") }}
groups:
  # One group: its rules run in order, so the alerts read the ratios of this evaluation.
  - name: identity-platform.slo
    rules:
{{- range $app, $slo := .Values.metrics.slos }}
      # The objectives as series, for the dashboard's burn-rate panels.
      - record: identity_platform:slo_availability_objective:ratio
        expr: vector({{ $slo.availability }} / 100)
        labels:
          app: {{ $app }}
      - record: identity_platform:slo_latency_objective:ratio
        expr: vector({{ $slo.latency.objective }} / 100)
        labels:
          app: {{ $app }}
{{- range $w := $windows }}
      - record: identity_platform:slo_errors:ratio_rate{{ $w }}
        expr: |
          sum by (namespace, job, app) (rate(http_requests_total{ {{- $api }}, app="{{ $app }}", status=~"5..|5xx"}[{{ $w }}]))
          /
          sum by (namespace, job, app) (rate(http_requests_total{ {{- $api }}, app="{{ $app }}"}[{{ $w }}]))
        labels:
          app: {{ $app }}
      - record: identity_platform:slo_latency_misses:ratio_rate{{ $w }}
        expr: |
          1 - (
            sum by (namespace, job, app) (rate(http_request_duration_seconds_bucket{ {{- $api }}, app="{{ $app }}", le="{{ $slo.latency.thresholdSeconds }}"}[{{ $w }}]))
            /
            sum by (namespace, job, app) (rate(http_request_duration_seconds_count{ {{- $api }}, app="{{ $app }}"}[{{ $w }}]))
          )
        labels:
          app: {{ $app }}
{{- end }}
{{- end }}
{{- range $app, $slo := .Values.metrics.slos }}
{{- $kinds := list (dict "kind" "Availability" "series" "slo_errors" "objective" $slo.availability "what" "answered with a 5xx status")
                   (dict "kind" "Latency" "series" "slo_latency_misses" "objective" $slo.latency.objective "what" (printf "slower than %ss" $slo.latency.thresholdSeconds)) }}
{{- range $k := $kinds }}
{{- range $b := $burns }}
      - alert: IdentityPlatform{{ $k.kind }}BudgetBurn{{ $b.name }}
        expr: |
          identity_platform:{{ $k.series }}:ratio_rate{{ $b.long }}{app="{{ $app }}"} > ({{ $b.factor }} * (1 - {{ $k.objective }} / 100))
          and
          identity_platform:{{ $k.series }}:ratio_rate{{ $b.short }}{app="{{ $app }}"} > ({{ $b.factor }} * (1 - {{ $k.objective }} / 100))
        for: {{ $b.for }}
        labels:
          severity: {{ $b.severity }}
          slo: {{ $k.kind | lower }}
          app: {{ $app }}
        annotations:
          summary: "{{ $app }}: {{ $k.kind | lower }} SLO budget burning {{ $b.factor }}x too fast"
          description: "{{ "{{" }} $value | humanizePercentage {{ "}}" }} of the requests of {{ "{{" }} $labels.job {{ "}}" }} in {{ "{{" }} $labels.namespace {{ "}}" }} were {{ $k.what }} over the last {{ $b.long }} (objective: {{ $k.objective }}% good): the 30-day error budget burns more than {{ $b.factor }} times as fast as it may ({{ $b.share }})."
{{- end }}
{{- end }}
{{- end }}
{{- end }}
