#!/usr/bin/env bash
# Validate every manifest under deploy/ offline; run by .ci/run, and locally:
#
#   bash deploy/validate.sh
#
# Needs python3 with venv (Debian: python3-venv), promtool (Debian: prometheus) and amtool
# (Debian: prometheus-alertmanager); installs kubernetes-validate from PyPI into a virtualenv
# (VALIDATE_VENV, default ~/.cache/alert-router/validate-venv) on first use.
#
# 1. Core kinds against Kubernetes' own schemas (kubernetes-validate, strict) for the oldest
#    and newest Kubernetes versions we claim; Prometheus Operator resources against its CRD
#    schemas (deploy/schemas/); references between the files of each variant.
#    (kubernetes-validate's CLI only warns and exits 0 on a kind it has no schema for, so
#    deploy/validate.py calls its library and treats a missing schema as an error.)
# 2. promtool check rules on the PrometheusRule's groups, and promtool test rules with the
#    unit tests in deploy/tests/ (each key alert fires when it should and not otherwise).
# 3. amtool check-config on the sidecar variants' Alertmanager configuration.
# The routers' configurations in the ConfigMaps are checked by `cargo test --test deploy`
# (alert-router check-config), together with every metric name the rules use.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSIONS=(1.29.0 1.37.0)
VENV=${VALIDATE_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/alert-router/validate-venv}
# Debian's interpreter (python3-venv), not whatever python3 comes first on PATH
PYTHON=${VALIDATE_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "deploy/validate.sh: $1 is missing (Debian package: $2)" >&2; exit 1; }
}
need promtool prometheus
need amtool prometheus-alertmanager

if ! "$VENV/bin/python" -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null \
  || [ "$("$VENV/bin/python" -c 'import kubernetes_validate.version as v; print(v.__version__)')" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "== creating $VENV with kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
PY="$VENV/bin/python"

manifests=(deploy/kubernetes.yaml deploy/monitoring.yaml deploy/sidecar/*.yaml)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== schemas and references"
version_args=()
for v in "${KUBERNETES_VERSIONS[@]}"; do version_args+=(--kubernetes-version "$v"); done
"$PY" deploy/validate.py check "${version_args[@]}" "${manifests[@]}"

echo "== promtool check rules (the PrometheusRule's groups)"
"$PY" deploy/validate.py rules deploy/monitoring.yaml "$work/alert-router.rules.yml"
promtool check rules "$work/alert-router.rules.yml"

echo "== promtool test rules"
"$PY" deploy/validate.py rules --no-annotations deploy/monitoring.yaml "$work/alert-router.rules-without-annotations.yml"
cp deploy/tests/*.test.yml "$work/"
(cd "$work" && promtool test rules ./*.test.yml)

echo "== amtool check-config (Alertmanager's configuration in the sidecar variants)"
"$PY" deploy/validate.py config deploy/sidecar/alert-router.yaml Secret alertmanager-main alertmanager.yaml "$work/alertmanager.yaml"
amtool check-config "$work/alertmanager.yaml"

echo "deploy/validate.sh: all manifests valid"
