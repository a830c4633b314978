#!/bin/sh
# bench_import.sh - `engram table import` of a BF16 safetensors tensor next to
# `cp` of the same file (plus an fsync of the copy, as the import syncs its
# table), on the same disk, each run twice in turn; the best time of each and
# the peak RSS of each process are printed, and import speed / cp speed
# (target >= 0.5). The file (a 4 GiB [rows, 256] BF16 tensor of random bits
# by default) is written here and removed with everything else at the end.
#
#   bench/bench_import.sh            BENCH_IMPORT_MB=4096 BENCH_IMPORT_DIM=256
#                                    BENCH_IMPORT_DIR=/var/tmp ENGRAM=build/engram
set -eu
ENGRAM=${ENGRAM:-build/engram}
PYTHON=${PYTHON:-/usr/bin/python3}
MB=${BENCH_IMPORT_MB:-4096}
DIM=${BENCH_IMPORT_DIM:-256}
ROWS=$((MB * 1048576 / (DIM * 2)))
BYTES=$((ROWS * DIM * 2))

base=${BENCH_IMPORT_DIR:-${TMPDIR:-/var/tmp}}
need_kb=$((BYTES / 1024 * 3 + 1048576)) # the file, its copy, the table
avail_kb=$(df -Pk "$base" | awk 'NR == 2 { print $4 }')
if [ "$avail_kb" -lt "$need_kb" ]; then
	echo "bench_import: $base has $((avail_kb / 1048576)) GiB free, needs $((need_kb / 1048576))" >&2
	exit 1
fi
dir=$(mktemp -d "$base/engram-import.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
src="$dir/model.safetensors"

# the file: a header written by hand (the format is 8 bytes of length and
# JSON), then random bytes as the tensor's data
"$PYTHON" - "$src" "$ROWS" "$DIM" <<'EOF'
import json, struct, sys
path, rows, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = json.dumps({"__metadata__": {"format": "pt"},
                "engram.weight": {"dtype": "BF16", "shape": [rows, dim],
                                  "data_offsets": [0, rows * dim * 2]}}).encode()
h += b" " * (-len(h) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
EOF
head -c "$BYTES" /dev/urandom >> "$src"
cat "$src" > /dev/null # both sides start from a warm page cache

# runs a shell command; prints "seconds peak_rss_kb"
measure() {
	"$PYTHON" - "$1" <<'EOF'
import os, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(["sh", "-c", sys.argv[1]])
_, status, ru = os.wait4(p.pid, 0)
if status:
    sys.exit(f"bench_import: '{sys.argv[1]}' failed")
print(f"{time.monotonic() - t0:.3f} {ru.ru_maxrss}")
EOF
}

less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b == "" || a < b) }'; }

best_cp= best_imp= rss_cp= rss_imp=
for round in 1 2; do
	set -- $(measure "cp '$src' '$dir/copy' && '$PYTHON' -c 'import os; fd = os.open(\"$dir/copy\", os.O_RDONLY); os.fsync(fd)'")
	if less "$1" "$best_cp"; then best_cp=$1 rss_cp=$2; fi
	rm -f "$dir/copy"
	set -- $(measure "'$ENGRAM' table import '$dir/table' --from '$dir' --tensor engram.weight > /dev/null")
	if less "$1" "$best_imp"; then best_imp=$1 rss_imp=$2; fi
	rm -rf "$dir/table"
done

"$PYTHON" - "$BYTES" "$best_cp" "$rss_cp" "$best_imp" "$rss_imp" <<'EOF'
import sys
n, tc, rc, ti, ri = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"import of a {n / 2**30:.2f} GiB BF16 tensor vs cp of its file (best of 2 each):")
print(f"  cp + fsync     {tc:8.2f} s  {n / tc / 1e6:8.0f} MB/s  peak RSS {rc / 1024:8.1f} MiB")
print(f"  engram import  {ti:8.2f} s  {n / ti / 1e6:8.0f} MB/s  peak RSS {ri / 1024:8.1f} MiB")
r = tc / ti
print(f"import / cp speed {r:.2f} (target >= 0.5: {'met' if r >= 0.5 else 'MISSED'}); "
      f"peak RSS {100 * ri / 1024 / (n / 2**20):.1f}% of the tensor")
EOF
