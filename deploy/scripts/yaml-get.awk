# Prints the scalar at a dotted path (e.g. image.repository) of a simple block-style YAML file such as the chart's
# values.yaml or Chart.yaml: nested maps indented by 2 spaces, plain or double-quoted scalars. Enough for the
# Makefile to read image names and versions from the chart, the one place they are written.
#   awk -v want=image.repository -f yaml-get.awk values.yaml
/^[[:space:]]*(#|$)/ { next }
/^ *[A-Za-z0-9_.-]+:/ {
  match($0, /^ */)
  depth = RLENGTH / 2
  line = substr($0, RLENGTH + 1)
  key = line
  sub(/:.*/, "", key)
  keys[depth] = key
  path = keys[0]
  for (i = 1; i <= depth; i++) path = path "." keys[i]
  if (path == want) {
    value = line
    sub(/^[^:]*:[[:space:]]*/, "", value)
    sub(/[[:space:]]+#.*$/, "", value)
    if (value ~ /^".*"$/ || value ~ /^'.*'$/) value = substr(value, 2, length(value) - 2)
    print value
    exit
  }
}
