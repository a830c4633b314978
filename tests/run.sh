#!/bin/sh
# Runs every test: the Check binaries under $BUILD/tests, then the Python and
# Node.js tests. Exits non-zero when any fails. Each Check case runs forked
# with a timeout (CK_DEFAULT_TIMEOUT) in its own temporary directory.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export ENGRAMD="$PWD/$BUILD/engramd" ENGRAM="$PWD/$BUILD/engram" BUILD PYTHON
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}
export PYTHONPATH="$PWD/$BUILD/gen/python:$PWD/client/python:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"

passed=0 failed=0 failures=""
run() { # name cmd...
	name=$1; shift
	echo "== $name"
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures="$failures $name"; fi
}

for t in "$BUILD"/tests/unit/check_* "$BUILD"/tests/integration/check_*; do
	case $t in *.d|*'*'*) continue ;; esac
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done
for t in tests/python/test_*.py; do
	[ -f "$t" ] || continue
	run "$(basename "$t")" "$PYTHON" -m unittest -v "$t"
done
for t in tests/node/*.test.js; do
	[ -f "$t" ] || continue
	if ! command -v node >/dev/null 2>&1; then
		echo "== $(basename "$t"): SKIPPED, node is not installed"
		continue
	fi
	run "$(basename "$t")" sh -c "cd examples/node && ([ -d node_modules ] || npm install --no-audit --no-fund --silent) && node --test ../../$t"
done

echo
[ -n "$failures" ] && echo "failed:$failures"
echo "test programs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
