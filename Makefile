# The project's commands. Each one installs what it needs first (scripts/setup.sh).
.PHONY: run test bench iso build setup clean

run: setup
	cargo xtask run

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
