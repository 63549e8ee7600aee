{{/*
The job label of each component's metrics, set by the ServiceMonitor and PodMonitor
(monitoring-servicemonitor.yaml, monitoring-podmonitor.yaml); the alerts
(monitoring-prometheusrule.yaml) select them by it.
*/}}
{{- define "kubenova.operator.metricsJob" -}}
{{- include "kubenova.operator.fullname" . -}}
{{- end -}}

{{- define "kubenova.nodeAgent.metricsJob" -}}
{{- include "kubenova.nodeAgent.fullname" . -}}
{{- end -}}

{{/* The interval and timeout of one monitor's endpoint; call with its values. */}}
{{- define "kubenova.monitoring.scrape" -}}
{{- with .interval }}
interval: {{ . }}
{{- end }}
{{- with .scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
{{- end -}}

{{/* The runbook of one alert: its section of docs/runbooks.md (the anchor is the alert's name in lower case). */}}
{{- define "kubenova.runbook" -}}
{{- printf "%s#%s" .ctx.Values.monitoring.prometheusRule.runbookUrl (lower .alert) -}}
{{- end -}}
