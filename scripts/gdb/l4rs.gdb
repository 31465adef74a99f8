# GDB set-up for l4rs: symbols of the kernel, sigma0 and the root server at their link
# addresses (all three are static ELF files loaded where they are linked), and the Python
# helpers `l4-current` and `l4-threads`. Run from the workspace root:
#
#   make debug                                   # terminal 1: QEMU halted, GDB stub on :1234
#   gdb -x scripts/gdb/l4rs.gdb -ex 'target remote :1234'     # terminal 2
#
set confirm off
set pagination off
set print pretty off
file target/x86_64-unknown-none/release/kernel
add-symbol-file target/x86_64-unknown-none/release/sigma0
add-symbol-file target/x86_64-unknown-none/release/root
source scripts/gdb/l4rs.py
