#!/usr/bin/env bash
# One-step, idempotent set-up for xdpstack: system packages, npm dependencies, the native
# AF_XDP addon, the BPF objects and the TypeScript build. Quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. Debian packages -------------------------------------------------------------------
PKGS=(libxdp-dev libbpf-dev clang llvm xdp-tools iproute2 ethtool tshark tcpdump bpftool
      python3-scapy iputils-ping iputils-arping netcat-openbsd gcc-multilib linux-libc-dev
      make g++ python3 hyperfine wrk curl openssl ndisc6
      libiscsi-bin libiscsi-dev tgt)
# libiscsi-bin: the initiator of the iSCSI proof (iscsi-test-cu, iscsi-ls, iscsi-perf); libiscsi-dev:
# builds bench/c/iscsi-load (writes, which iscsi-perf lacks); tgt: tgtd, the reference target. The
# lab runs its own tgtd per test in a namespace with its own control port (test/lib/iscsi-tgt.ts),
# never the system's tgt service (control port 0, root namespace), which may run or not.
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${missing[*]}"
    log "run as root (or: sudo apt-get install ${missing[*]})"; exit 1
  fi
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. npm dependencies -------------------------------------------------------------------
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- 3. BPF objects and native addon (make decides what is stale) -------------------------
NODEDIR=${npm_config_nodedir:-}
if [ -z "$NODEDIR" ]; then
  nd=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$nd/include/node/node_api.h" ] && NODEDIR=$nd
fi
make -s -C driver NODEDIR="$NODEDIR"

# --- 4. TypeScript -------------------------------------------------------------------------
npx tsc -p tsconfig.json
