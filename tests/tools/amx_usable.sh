#!/usr/bin/env bash
# Exit 0 if this machine can execute AMX tile instructions: asks the kernel for the tile state
# (arch_prctl ARCH_REQ_XCOMP_PERM), then configures, zeroes and releases a tile in a child
# process. A CPU can list amx_tile while its hypervisor leaves the state off (the first tile
# instruction then faults). Used by build_llama_cpp.sh.
set -euo pipefail
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/amx.c" <<'C'
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 2;
    unsigned char cfg[64];
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1;            /* palette 1 */
    cfg[16] = 64;          /* tile 0: 64 bytes per row */
    cfg[48] = 16;          /* tile 0: 16 rows */
    _tile_loadconfig(cfg);
    _tile_zero(0);
    _tile_release();
    return 0;
}
C
cc -O1 -mamx-tile -o "$tmp/amx" "$tmp/amx.c" 2>/dev/null || exit 1
bash -c '"$0"; exit $?' "$tmp/amx" >/dev/null 2>&1
