# The project's commands. Each one installs what it needs first (scripts/setup.sh).
.PHONY: run debug test bench iso build setup clean

run: setup
	cargo xtask run

# Like run, but QEMU starts halted waiting for GDB on :1234 (README: Debugging).
debug: setup
	cargo xtask debug

test: setup
	cargo xtask test

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
