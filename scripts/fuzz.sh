#!/bin/sh
# make fuzz: builds each tests/fuzz/fuzz_*.c as a libFuzzer binary (clang,
# ASan + UBSan) and runs it for FUZZ_SECONDS (default 30) from its seed
# corpus tests/fuzz/corpus/<name>/. A harness names the sources it needs on a
# line "// fuzz-sources: a.c b/*.c $BUILD/gen/x.c" ($BUILD is replaced by the
# build directory). Exits non-zero on the first crash.
set -eu
BUILD=$1; shift
SECONDS_EACH=${FUZZ_SECONDS:-30}
OUT="$BUILD/fuzz"
mkdir -p "$OUT"
PKGS="lmdb libuv libprotobuf-c libxxhash jansson libsystemd liburing"
VERSION=$(cat VERSION)
# shellcheck disable=SC2046
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -DENGRAM_VERSION=\"$VERSION\" -fsanitize=fuzzer,address,undefined \
-fno-sanitize-recover=all -Istorage -Iclient -Iserver -I$BUILD/gen $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lm -pthread"

for src in "$@"; do
	name=$(basename "$src" .c)
	sources=$(sed -n 's|^// fuzz-sources: ||p' "$src" | sed "s|\$BUILD|$BUILD|g")
	echo "== $name: building"
	# shellcheck disable=SC2086
	clang $CFLAGS -o "$OUT/$name" "$src" $sources $LIBS
	corpus="$OUT/corpus-$name"
	mkdir -p "$corpus"
	seeds="tests/fuzz/corpus/$name"
	echo "== $name: fuzzing for ${SECONDS_EACH}s"
	# shellcheck disable=SC2086
	"$OUT/$name" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
		-artifact_prefix="$OUT/$name-" "$corpus" $( [ -d "$seeds" ] && echo "$seeds" ) \
		2>"$OUT/$name.log" || { tail -50 "$OUT/$name.log"; echo "fuzz: $name FAILED"; exit 1; }
	grep -E 'stat::number_of_executed_units|Done' "$OUT/$name.log" | tail -2
done
echo "fuzz: all harnesses ran without a crash"
