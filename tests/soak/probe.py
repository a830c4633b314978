"""What the soak measures of the daemon: its memory, file descriptors and
threads (/proc), the bytes its malloc has allocated (glibc's mallinfo2(), as
the daemon exports it in /metrics), its /metrics, and its log lines by level.

engramd keeps freed response memory for reuse (server/main.c raises glibc's
mmap and trim thresholds), so its RssAnon after a busy stretch holds free
memory in malloc's arenas and is no measure of a leak. What is: the bytes
malloc has handed out and not got back, and the anonymous memory outside
malloc's arenas (thread stacks, the row cache, direct mappings).
"""
import os
import re
import urllib.request

MiB = 1024 * 1024
HEAP_MAX = 64 * MiB  # glibc's arena heaps are mappings aligned to this


def _anon(pid):
    """(anonymous bytes in all mappings, of which in malloc's arenas)."""
    total = arenas = 0
    in_arena = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                start = int(parts[0].split("-")[0], 16)
                name = parts[5] if len(parts) > 5 else ""
                in_arena = name == "[heap]" or (not name and start % HEAP_MAX == 0
                                                 and parts[1] == "rw-p")
            elif line.startswith("Anonymous:"):
                kb = int(line.split()[1]) * 1024
                total += kb
                arenas += kb if in_arena else 0
    return total, arenas


def proc(pid):
    """RssAnon, RssFile, RssShmem, ArenaAnon, OtherAnon (bytes), Threads
    (io_uring's kernel workers apart, in io_workers) and fds of pid."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                out[key] = int(val.split()[0]) * 1024
    total, out["ArenaAnon"] = _anon(pid)
    out["OtherAnon"] = total - out["ArenaAnon"]
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue  # exited meanwhile
        names[name] = names.get(name, 0) + 1
    # io_uring's kernel workers (iou-wrk-*) come and go with the reads in
    # flight; the kernel may keep one idle: counted apart, not judged
    out["io_workers"] = sum(n for k, n in names.items() if k.startswith("iou-"))
    out["Threads"] = sum(names.values()) - out["io_workers"]
    return out


def sanitizer(pid):
    """The sanitizer runtime pid runs with that replaces malloc, or None."""
    with open(f"/proc/{pid}/maps") as f:
        m = re.search(r"lib([at]san)\.so", f.read())
    return m.group(1) if m else None


def heap(m):
    """({"system", "in_use"} bytes of malloc, None) from the daemon's
    /metrics m (mallinfo2 over every arena, mapped chunks included), or
    (None, why not)."""
    try:
        return {"system": int(m["engramd_malloc_arena_bytes"]),
                "in_use": int(m["engramd_malloc_in_use_bytes"])}, None
    except KeyError as e:
        return None, f"/metrics has no {e.args[0]}"


def show(s):
    return (f"RssAnon {s['RssAnon'] / MiB:.1f} MiB (malloc arenas {s['ArenaAnon'] / MiB:.1f}, "
            f"other {s['OtherAnon'] / MiB:.1f}), RssFile {s['RssFile'] / MiB:.1f} MiB, "
            f"RssShmem {s['RssShmem'] / MiB:.1f} MiB, fds {s['fds']}, threads {s['Threads']} "
            f"(+{s['io_workers']} io_uring workers)")


def metrics(addr):
    """{'name{labels}': value} from GET http://addr/metrics."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            out[key] = float(val)
    return out


def log_lines(path):
    """{level: [line]} of the daemon's log ("engramd[PID]: LEVEL: text")."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"engramd\[\d+\]: (\w+): ", line)
            out.setdefault(m.group(1) if m else "other", []).append(line)
    return out


def grouped(lines):
    """Lines with numbers and paths blanked, each shape once with its count."""
    counts = {}
    for line in lines:
        shape = re.sub(r"/\S+", "PATH", re.sub(r"^engramd\[\d+\]: ", "", line))
        shape = re.sub(r"\d+", "N", shape)
        counts[shape] = counts.get(shape, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


# What "flat" means between the two quiet points (the same freshly published
# tables, every row read once, the same row cache, no client connected):
# (key, allowed growth, why).
TOLERANCES = [
    ("fds", 0, "a quiet daemon holds its listeners, loops and table files: one more is a leak"),
    ("Threads", 0, "the thread pools are fixed at start"),
    ("RssShmem", 0, "no client's shared buffer may stay mapped once it left"),
    ("RssFile", 4 * MiB, "the same versions, fully read: an old version left mapped is >= 8 MiB"),
    ("OtherAnon", 4 * MiB, "stacks, row cache and direct mappings are sized at start"),
    ("in_use", 4 * MiB, "malloc's bytes handed out: what the daemon holds when idle"),
]


MEMORY = ("OtherAnon", "in_use")


def flatness(start, end, san=None):
    """[(line, ok)] comparing the end figures with the start ones (a key
    missing from either fails). Under a sanitizer that owns malloc (its
    shadow memory and quarantine grow by design) memory is not judged."""
    rows = []
    for key, tol, why in TOLERANCES:
        if san and key in MEMORY:
            rows.append((f"{key}: not judged under {san} (its allocator owns the memory)", True))
            continue
        if key not in start or key not in end:
            rows.append((f"{key}: not measured", False))
            continue
        a, b = start[key], end[key]
        fmt = str if key in ("fds", "Threads") else (lambda v: f"{v / MiB:.1f} MiB")
        rows.append((f"{key:9s} {fmt(a)} -> {fmt(b)} (growth allowed {fmt(tol)}: {why})",
                     b - a <= tol))
    return rows
