# The project's commands. Each one installs what it needs first (scripts/setup.sh).
.PHONY: run debug test bench iso build setup clean fuzz stress

run: setup
	cargo xtask run

# Like run, but QEMU starts halted waiting for GDB on :1234 (README: Debugging).
debug: setup
	cargo xtask debug

test: setup
	cargo xtask test

# The system-call fuzzer on the kernel with invariant checks, seed after seed, for FUZZ_TIME
# seconds (default 300); FUZZ_ARGS adds options (see xtask/src/fuzz.rs), e.g.
# `make fuzz FUZZ_ARGS="--seed 0x77 --seeds 1 --icount"`; `--stress` also runs the full IPC
# stress (1,000,000 messages).
FUZZ_TIME ?= 300
fuzz: setup
	cargo xtask fuzz --time $(FUZZ_TIME) $(FUZZ_ARGS)

# The IPC stress alone (MESSAGES, default 1,000,000).
MESSAGES ?= 1000000
stress: setup
	cargo xtask stress --messages $(MESSAGES)

bench: setup
	cargo xtask bench

iso: setup
	@scripts/setup.sh --iso
	cargo xtask iso

build: setup
	cargo xtask build

setup:
	@scripts/setup.sh

clean:
	cargo clean
