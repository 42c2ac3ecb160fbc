#!/usr/bin/env bash
# Installs the real clients the tests and benchmarks drive, from Debian's packages, where missing:
# skopeo (OCI client), aria2 (BitTorrent client), prometheus (its promtool checks deploy/prometheus),
# chromium (headless, driven by playwright-core in the dashboard's browser test), podman and containerd (pull
# through an agent) and qemu-utils (qemu-img makes the VM disks the format tests push) for the tests; with
# --bench also Debian's docker-registry (CNCF distribution) and opentracker, the baselines of loadtest/, and wrk to load them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=install-tools
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

packages=(skopeo aria2 tar prometheus chromium podman containerd qemu-utils)
[[ ${1:-} == --bench ]] && packages+=(docker-registry opentracker wrk)
ensure_packages "${packages[@]}"
log "ready: ${packages[*]}"
