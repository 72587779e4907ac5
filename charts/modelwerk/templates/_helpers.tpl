{{/* An image reference: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "modelwerk.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag | toString) -}}
{{- end -}}

{{/* The labels every object of the operator carries (component given as .). */}}
{{- define "modelwerk.operatorLabels" -}}
app.kubernetes.io/name: modelwerk-operator
{{- with . }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: modelwerk
{{- end -}}
