#!/bin/sh
# Kernel instructions per map item + Unmap, by function (decision 011). Boots the root's
# `scale profile K` mode twice (K map items each followed by an Unmap, and K = 0) under
# `-icount shift=0` with QEMU's per-instruction log of the kernel half, counts the executed
# program counters, attributes them to the kernel's symbols (inlined code counts for its
# caller) and prints the difference divided by K. Needs a `cargo xtask build` first; each boot
# takes a few minutes (the log is streamed through a pipe, never written to disk).
# usage: scripts/profile-map.sh [K]   (default 100)
set -e
K=${1:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$ROOT/target/x86_64-unknown-none/release
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for k in 0 "$K"; do
  mkfifo "$T/fifo"
  (grep -o '/ffffffff[0-9a-f]*' "$T/fifo" | cut -c2- | sort | uniq -c > "$T/pcs.$k") &
  qemu-system-x86_64 -machine pc,accel=tcg -cpu qemu64 -m 1024 -display none -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$B/kernel" -append "kmem=512M" \
    -initrd "$B/sigma0,$B/root scale profile $k" -icount shift=0 -serial "file:$T/serial.$k" \
    -singlestep -d exec,nochain -dfilter 0xffff800000000000..0xffffffffffffffff -D "$T/fifo" || true
  wait
  rm "$T/fifo"
  grep -q "scale: done" "$T/serial.$k" || { echo "boot with k=$k did not finish" >&2; exit 1; }
done
nm -n --demangle "$B/kernel" | grep -i ' [tw] ' > "$T/syms"
python3 - "$T" "$K" <<'PY'
import bisect, collections, re, sys
d, k = sys.argv[1], float(sys.argv[2])
syms = []
for l in open(f'{d}/syms'):
    a, _, n = l.split(' ', 2)
    syms.append((int(a, 16), re.sub(r'::h[0-9a-f]{16}$', '', n.strip())))
addrs = [a for a, _ in syms]
def load(name):
    c = collections.Counter()
    for l in open(f'{d}/{name}'):
        n, pc = l.split()
        i = bisect.bisect_right(addrs, int(pc, 16)) - 1
        c[syms[i][1] if i >= 0 else '?'] += int(n)
    return c
a, b = load(f'pcs.{int(k)}'), load('pcs.0')
diff = {n: (a[n] - b.get(n, 0)) / k for n in a}
print(f'kernel instructions per map item + Unmap: {sum(diff.values()):.1f}')
for n, v in sorted(diff.items(), key=lambda x: -x[1])[:30]:
    print(f'{v:8.1f}  {n}')
PY
