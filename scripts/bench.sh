#!/bin/sh
# make bench: runs every benchmark binary in $BUILD/bench (argument 1) and
# prints its report. Each bench starts what it needs itself (its own tables in
# a temporary directory, its own engramd from $ENGRAMD), so nothing has to be
# running. Exits non-zero when a bench fails to run; missed performance
# targets are reported in the output, not as failures.
#
#   scripts/bench.sh build
set -u
BUILD=${1:-build}
export ENGRAMD="${ENGRAMD:-$PWD/$BUILD/engramd}" ENGRAM="${ENGRAM:-$PWD/$BUILD/engram}"
# figures' data and PNGs (bench/plot.gp)
export BENCH_OUT="${BENCH_OUT:-$PWD/$BUILD/bench-report}"
mkdir -p "$BENCH_OUT"

if [ ! -x "$ENGRAMD" ]; then
	echo "bench: $ENGRAMD is missing; run make first" >&2
	exit 1
fi
echo "bench: $(uname -srm), $(nproc) cores, load average$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /')"
if [ "$(cut -d. -f1 /proc/loadavg)" -ge "$(nproc)" ]; then
	echo "bench: warning: the machine is busy; rates below understate what it can do"
fi

failed=0 ran=0
for b in "$BUILD"/bench/*; do
	case $b in *.d|*'*') continue ;; esac
	[ -f "$b" ] && [ -x "$b" ] || continue
	ran=$((ran + 1))
	echo
	echo "== $(basename "$b")"
	if ! "$b"; then
		echo "bench: $(basename "$b") failed" >&2
		failed=$((failed + 1))
	fi
done
# the Python client next to the C client (runs bench_daemon itself)
PYTHON=${PYTHON:-/usr/bin/python3}
ran=$((ran + 1))
echo
echo "== bench_python.py"
if ! "$PYTHON" bench/bench_python.py; then
	echo "bench: bench_python.py failed" >&2
	failed=$((failed + 1))
fi
# checkpoint import next to cp (writes and removes ~12 GB under /var/tmp)
ran=$((ran + 1))
echo
echo "== bench_import.sh"
if ! ENGRAM="$ENGRAM" PYTHON="$PYTHON" sh bench/bench_import.sh; then
	echo "bench: bench_import.sh failed" >&2
	failed=$((failed + 1))
fi
if command -v gnuplot >/dev/null 2>&1 && [ -f "$BENCH_OUT/cold_depth.dat" ] &&
	[ -f "$BENCH_OUT/decode_latency.alone" ]; then
	gnuplot -e "dir='$BENCH_OUT'" bench/plot.gp && echo && echo "bench: figures in $BENCH_OUT"
fi
echo
echo "bench: $ran benchmarks run, $failed failed"
[ "$failed" -eq 0 ]
