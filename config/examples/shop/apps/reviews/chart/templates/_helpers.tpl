{{- define "reviews.selector" -}}
app.kubernetes.io/name: {{ .Values.rollout.app }}
{{- end -}}
