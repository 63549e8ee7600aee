{{/* Chart name, overridable. */}}
{{- define "kubenova.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name when it already contains the chart name. */}}
{{- define "kubenova.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kubenova.operator.fullname" -}}
{{- printf "%s-operator" (include "kubenova.fullname" .) -}}
{{- end -}}

{{- define "kubenova.nodeAgent.fullname" -}}
{{- printf "%s-node-agent" (include "kubenova.fullname" .) -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "kubenova.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubenova.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubenova
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "kubenova.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubenova.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubenova.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "kubenova.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubenova.nodeAgent.serviceAccountName" -}}
{{- if .Values.nodeAgent.serviceAccount.create -}}
{{- default (include "kubenova.nodeAgent.fullname" .) .Values.nodeAgent.serviceAccount.name -}}
{{- else -}}
{{- required "nodeAgent.serviceAccount.name is required when nodeAgent.serviceAccount.create is false" .Values.nodeAgent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The one image every kubenova container runs: <repository>@<digest> when image.digest is set
(the tag is then ignored), else <repository>:<tag or appVersion>.
*/}}
{{- define "kubenova.image" -}}
{{- with .Values.image.digest -}}
{{- printf "%s@%s" $.Values.image.repository . -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Env var values are strings; numbers print without exponent or trailing zeros. */}}
{{- define "kubenova.num" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/*
Cross-field checks JSON Schema cannot express: a follower must see renewals often enough,
and agents must heartbeat well within the operator's timeout. And the release namespace must
not enforce a Pod Security level that refuses the pods on every node.
*/}}
{{- define "kubenova.validate" -}}
{{- $le := .Values.operator.leaderElection -}}
{{- if and (gt (int .Values.operator.replicas) 1) (not $le.enabled) -}}
{{- fail (printf "operator.replicas is %d but operator.leaderElection.enabled is false: several replicas without leader election would all act at once" (int .Values.operator.replicas)) -}}
{{- end -}}
{{- if $le.enabled -}}
{{- if ge (float64 $le.renewDeadline) (float64 $le.leaseDuration) -}}
{{- fail (printf "operator.leaderElection.renewDeadline (%v) must be shorter than leaseDuration (%v)" $le.renewDeadline $le.leaseDuration) -}}
{{- end -}}
{{- if ge (float64 $le.retryPeriod) (float64 $le.renewDeadline) -}}
{{- fail (printf "operator.leaderElection.retryPeriod (%v) must be shorter than renewDeadline (%v)" $le.retryPeriod $le.renewDeadline) -}}
{{- end -}}
{{- end -}}
{{- if ge (float64 .Values.nodeAgent.heartbeatInterval) (float64 .Values.operator.nodeHeartbeatTimeout) -}}
{{- fail (printf "nodeAgent.heartbeatInterval (%v) must be shorter than operator.nodeHeartbeatTimeout (%v), or every node would be marked down between heartbeats" .Values.nodeAgent.heartbeatInterval .Values.operator.nodeHeartbeatTimeout) -}}
{{- end -}}
{{- if eq (int .Values.nodeAgent.metrics.port) (int .Values.nodeAgent.migration.port) -}}
{{- fail (printf "nodeAgent.metrics.port and nodeAgent.migration.port are both %d: both listen on the host network" (int .Values.nodeAgent.metrics.port)) -}}
{{- end -}}
{{- $level := include "kubenova.podSecurity.enforced" . -}}
{{- if and $level (ne $level "privileged") -}}
{{- fail (printf "namespace %s enforces the Pod Security level %q, which refuses the pods kubenova runs on every node (%s); they need \"privileged\": kubectl label namespace %s pod-security.kubernetes.io/enforce=privileged --overwrite (see \"Install\" in the chart README)" .Release.Namespace $level (include "kubenova.podSecurity.needs" .) .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
The Pod Security level the release namespace enforces (its pod-security.kubernetes.io/enforce
label), read from the cluster at install or upgrade; empty under `helm template` and where
the label is not set (the cluster's default applies, privileged unless configured otherwise).
*/}}
{{- define "kubenova.podSecurity.enforced" -}}
{{- $ns := lookup "v1" "Namespace" "" .Release.Namespace -}}
{{- if $ns -}}
{{- index ($ns.metadata.labels | default dict) "pod-security.kubernetes.io/enforce" | default "" -}}
{{- end -}}
{{- end -}}

{{/* Why the agent's pods need the privileged level; docs/security.md says the same. */}}
{{- define "kubenova.podSecurity.needs" -}}
{{- if eq .Values.nodeAgent.driver "libvirt" -}}
host network, host ports and host directories for the agent; a privileged libvirtd with host directories
{{- else -}}
host network, host ports and a host directory
{{- end -}}
{{- end -}}

{{/* A label map as the agent's --labels flag wants it: k=v,k2=v2 (sorted by key). */}}
{{- define "kubenova.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{- define "kubenova.libvirt.fullname" -}}
{{- printf "%s-libvirt" (include "kubenova.fullname" .) -}}
{{- end -}}

{{/*
Where libvirt keeps what must outlive its pod, on the host under the state directory, in
<node>/sock (the sockets shared with the agent's pod) and <node>/qemu (persistent domain
definitions). "_" cannot start a node name, so this never meets an agent's <stateDir>/<node>.
*/}}
{{- define "kubenova.libvirt.hostDir" -}}
{{- printf "%s/_libvirt" .Values.nodeAgent.stateDir -}}
{{- end -}}

{{/* The directory of libvirtd's sockets inside the libvirtd and agent containers. */}}
{{- define "kubenova.libvirt.socketDir" -}}
/run/kubenova-libvirt
{{- end -}}

{{/* The URI the agent's virsh and the probes use: libvirtd's read-write socket, by path. */}}
{{- define "kubenova.libvirt.uri" -}}
{{- printf "qemu:///system?socket=%s/libvirt-sock" (include "kubenova.libvirt.socketDir" .) -}}
{{- end -}}
