#!/bin/sh
# Runs every test: the Check binaries under $BUILD/tests, then the Python and
# Node.js tests. Exits non-zero when any fails. Each Check case runs forked
# with a timeout (CK_DEFAULT_TIMEOUT) in its own temporary directory.
#
# A skip is not a pass: a suite that cannot run (no node) and every skipped
# Python or Node test case is listed at the end. With CI=true (.ci/run sets
# it) any skip fails the run unless tests/expected-skips declares it, with
# a reason.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
EXPECTED=tests/expected-skips
export ENGRAMD="$PWD/$BUILD/engramd" ENGRAM="$PWD/$BUILD/engram" BUILD PYTHON
export ENGRAMD_FAULTS="$PWD/$BUILD/engramd-faults"
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}
export PYTHONPATH="$PWD/$BUILD/gen/python:$PWD/client/python:$PWD/tests/python${PYTHONPATH:+:$PYTHONPATH}"

work=$(mktemp -d "${TMPDIR:-/tmp}/engram-run.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
# skips seen: "SUITE<TAB>reason" or "SUITE/CASE<TAB>reason", one a line
export EGT_SKIPS="$work/skips"
: > "$EGT_SKIPS"

passed=0 failed=0 failures=""
run() { # name cmd...
	name=$1; shift
	echo "== $name"
	{ "$@" 2>&1; echo $? > "$work/rc"; } | tee "$work/out"
	if [ "$(cat "$work/rc")" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1)); failures="$failures $name"
		# what failed, repeated at the end where a log's tail shows it:
		# Check's "file:line:F|E:case:test:...", Python's FAIL/ERROR and
		# assertion lines, node's "not ok", a sanitizer's SUMMARY; else the
		# output's last lines
		lines=$(grep -a -E ':[FE]:|^(FAIL|ERROR):|Error:|^ *not ok |SUMMARY: ' "$work/out" | head -n 20)
		[ -n "$lines" ] || lines=$(tail -n 5 "$work/out")
		printf '%s\n' "$lines" | sed "s|^|  $name: |" >> "$work/failed-lines"
	fi
}

# Skipped cases in node --test's TAP output ("ok N - name # SKIP reason"),
# and one unnamed entry per skip its "# skipped N" counts beyond those.
node_skips() { # suite
	awk -v suite="$1" '
	/^ *ok [0-9]+ - .* # [Ss][Kk][Ii][Pp]/ {
		line = $0
		sub(/^ *ok [0-9]+ - /, "", line)
		i = index(toupper(line), " # SKIP")
		reason = substr(line, i + 7); sub(/^ +/, "", reason)
		printf "%s/%s\t%s\n", suite, substr(line, 1, i - 1), reason ? reason : "(no reason given)"
		named++
	}
	/^# skipped [0-9]+/ { total = $3 }
	END { for (; named < total; named++) printf "%s/?\tskipped, name not reported\n", suite }
	' "$work/out" >> "$EGT_SKIPS"
}

for t in "$BUILD"/tests/unit/check_* "$BUILD"/tests/integration/check_*; do
	case $t in *.d|*'*'*) continue ;; esac
	[ -x "$t" ] || continue
	run "$(basename "$t")" "$t"
done
for t in tests/python/test_*.py; do
	[ -f "$t" ] || continue
	run "$(basename "$t")" "$PYTHON" tests/python/runner.py "$t"
done
for t in tests/node/*.test.js; do
	[ -f "$t" ] || continue
	if ! command -v node >/dev/null 2>&1; then
		echo "== $(basename "$t"): SKIPPED, node is not installed (scripts/deps.sh installs it)"
		printf '%s\tnode is not installed\n' "$(basename "$t")" >> "$EGT_SKIPS"
		continue
	fi
	run "$(basename "$t")" sh -c "cd examples/node && ([ -d node_modules ] || npm install --no-audit --no-fund --silent) && node --test ../../$t"
	node_skips "$(basename "$t")"
done

# ---- skips against the declared ones --------------------------------------

# tests/expected-skips: "KEY: reason" lines (KEY a suite or SUITE/CASE as
# listed below); a line without a reason is itself an error.
bad_decl=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$EXPECTED" 2>/dev/null |
	grep -v -E '^[^:]+: *[^[:space:]]')
declared() { # key -> its reason on stdout, or status 1
	grep -v '^[[:space:]]*#' "$EXPECTED" 2>/dev/null | awk -v k="$1" '
	{ i = index($0, ": "); if (i && substr($0, 1, i - 1) == k) { print substr($0, i + 2); found = 1; exit } }
	END { exit !found }'
}

undeclared=0 skipped=0
tab=$(printf '\t')
while IFS="$tab" read -r key reason; do
	skipped=$((skipped + 1))
	if why=$(declared "$key"); then
		echo "skipped, expected ($why): $key"
	else
		undeclared=$((undeclared + 1))
		echo "SKIPPED: $key ($reason)"
	fi
done < "$EGT_SKIPS"

echo
[ -n "$failures" ] && echo "failed:$failures" && cat "$work/failed-lines" 2>/dev/null
echo "test programs: $passed passed, $failed failed"
status=0
[ "$failed" -eq 0 ] || status=1
if [ -n "$bad_decl" ]; then
	echo "$EXPECTED: lines without a reason (want 'KEY: reason'):"
	echo "$bad_decl" | sed 's/^/  /'
	status=1
fi
if [ "$undeclared" -gt 0 ]; then
	if [ "${CI:-}" = true ]; then
		echo "CI: $undeclared skip(s) above not declared in $EXPECTED: failing the run"
		status=1
	else
		echo "WARNING: $undeclared skip(s) above: those tests did not run (CI fails on them)"
	fi
elif [ "$skipped" -gt 0 ]; then
	echo "$skipped expected skip(s), declared in $EXPECTED"
fi
exit $status
