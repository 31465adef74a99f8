#!/usr/bin/env bash
# Installs what building and booting need, when it is missing, without prompts:
# the bare-metal Rust target and QEMU (Debian's qemu-system-x86). Does nothing when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "setup: adding the Rust target x86_64-unknown-none to $toolchain"
    rustup target add --toolchain "$toolchain" x86_64-unknown-none
fi

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
if [ "${1:-}" = "--iso" ]; then
    command -v grub-mkrescue >/dev/null 2>&1 || need+=(grub-common)
    [ -d /usr/lib/grub/i386-pc ] || need+=(grub-pc-bin)
    command -v xorriso >/dev/null 2>&1 || need+=(xorriso)
    command -v mformat >/dev/null 2>&1 || need+=(mtools)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
