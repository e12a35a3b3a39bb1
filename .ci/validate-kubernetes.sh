#!/usr/bin/env bash
# Validates deploy/kubernetes offline (no cluster): schemas of every kind, unknown fields, cross-references and the
# drain timing (.ci/kubernetes/validate.mjs). The schemas come from the npm packages pinned in
# .ci/kubernetes/package-lock.json (kubernetes-models 5.1.0: the Kubernetes API's OpenAPI schemas, including
# resource.k8s.io/v1, so the API of Kubernetes 1.34 or later; @kubernetes-models/prometheus-operator 6.0.0 for ServiceMonitor),
# installed into .ci/kubernetes/node_modules. Usage: .ci/validate-kubernetes.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(realpath "${1:-deploy/kubernetes}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d .ci/kubernetes/node_modules/kubernetes-models ]; then
  (cd .ci/kubernetes && npm ci --no-audit --no-fund --loglevel=error)
fi
node .ci/kubernetes/validate.mjs "$dir"
