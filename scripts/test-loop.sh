#!/bin/sh
# Runs `make test` N times (default 10) and counts how many passed; with --load, two busy
# processes keep both host cores loaded meanwhile (stopped at the end). Each run's log is
# kept in target/test-loop/run-<i>.log; the closing line of each run is printed.
#   scripts/test-loop.sh [--load] [N]
set -u
load=0
if [ "${1:-}" = "--load" ]; then load=1; shift; fi
n=${1:-10}
cd "$(dirname "$0")/.." || exit 2
mkdir -p target/test-loop
pids=""
if [ $load = 1 ]; then
    for _ in 1 2; do
        sh -c 'while :; do :; done' &
        pids="$pids $!"
    done
    echo "load: busy processes$pids"
fi
stop_load() { for p in $pids; do kill "$p" 2>/dev/null; done; }
trap stop_load EXIT INT TERM
pass=0
i=1
while [ "$i" -le "$n" ]; do
    start=$(date +%s)
    if make test > "target/test-loop/run-$i.log" 2>&1; then
        pass=$((pass + 1)); verdict=ok
    else
        verdict=FAILED
    fi
    end=$(date +%s)
    echo "run $i: $verdict ($((end - start)) s): $(tail -n 1 "target/test-loop/run-$i.log")"
    i=$((i + 1))
done
echo "make test passed $pass of $n times$( [ $load = 1 ] && echo ' with two busy processes loading the host')"
[ "$pass" = "$n" ]
