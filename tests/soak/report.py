"""The soak's closing report: figures at the two quiet points and whether
they are flat, /metrics then and now, the counts of everything done, every
error seen, and the verdict."""
import probe

METRICS = ["engramd_connections", "engramd_connections_total", "engramd_output_bytes",
           'engramd_requests_total{status="ok"}', 'engramd_requests_total{status="bad_request"}',
           'engramd_requests_total{status="not_found"}',
           'engramd_requests_total{status="out_of_range"}',
           'engramd_requests_total{status="too_large"}',
           'engramd_requests_total{status="internal"}', "engramd_rows_total",
           "engramd_response_bytes_total", "engramd_reloads_total", "engramd_reload_failures_total",
           'engramd_cache_hits_total{table="rc"}', 'engramd_cache_misses_total{table="rc"}',
           'engramd_cache_evictions_total{table="rc"}', 'engramd_cache_rows{table="rc"}']


def sensitivity(a, b):
    """What leak per request or connection the in_use tolerance catches."""
    reqs = sum(b[k] - a[k] for k in b if k.startswith("engramd_requests_total{"))
    conns = b["engramd_connections_total"] - a["engramd_connections_total"]
    tol = dict((k, t) for k, t, _ in probe.TOLERANCES)["in_use"]
    return (f"between the quiet points: {reqs:.0f} requests, {conns:.0f} connections; a leak of "
            f"{tol / max(reqs, 1):.0f} bytes a request or {tol / max(conns, 1):.0f} bytes a "
            f"connection would exceed the in_use tolerance")


def describe(t):
    kind = (f"engram-v1 {t.spec['max_ngram']}-grams x {t.spec['heads']} heads"
            if t.spec else "slot lookups")
    return (f"table {t.name}: {t.slots} slots x {t.row_bytes} B, chunks of {t.chunk_slots}, "
            f"{kind}; a patch rewrites runs of {t.width} slot(s), 1 in 97")


def _counts(d):
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"


def summary(s):
    w = s.writer.counts
    lines = []
    reqs = rows = refused = 0
    for name, tot in sorted(s.worker_totals.items()):
        lines.append(f"  python {name}: {tot['requests']} requests, {tot['rows']} rows checked, "
                     f"{tot['refused']} bad requests refused as they should be")
        reqs, rows, refused = reqs + tot["requests"], rows + tot["rows"], refused + tot["refused"]
    lines.append(f"  engram CLI (libengram): {s.cli.requests} requests, {s.cli.rows} rows checked")
    lines.append(f"  quiet-point passes: {s.checked['requests']} requests, "
                 f"{s.checked['rows']} rows checked")
    reqs += s.cli.requests + s.checked["requests"]
    rows += s.cli.rows + s.checked["rows"]
    reloads = w["sighups"] + w["reload_requests"] + w["cli_reloads"]
    junk = {}
    for j in s.junk:
        for k, v in j.counts.items():
            junk[k] = junk.get(k, 0) + v
    lines += [
        f"  requests checked: {reqs}, rows checked: {rows}, expected refusals: {refused}",
        f"  patches: {w['patches']}, publishes: {w['publishes']}, reloads: {reloads} "
        f"(SIGHUP {w['sighups']}, Reload requests {w['reload_requests']}, engram reload "
        f"{w['cli_reloads']}; {w['deferred_reloads']} patches left for a later reload)",
        f"  clients SIGKILLed mid-request: {sum(s.killer.kills.values())} "
        f"({_counts(s.killer.kills)}; {s.killer.finished_first} finished before the kill)",
        f"  junk connections: {sum(junk.values())} ({_counts(junk)})",
    ]
    return lines


def activity(s):
    """How much of each kind of thing the soak did."""
    out = {f"python {k}": v["requests"] for k, v in s.worker_totals.items()}
    w = s.writer.counts
    out.update({"engram CLI requests": s.cli.requests, "patches": w["patches"],
                "publishes": w["publishes"], "SIGHUPs": w["sighups"],
                "Reload requests": w["reload_requests"] + w["cli_reloads"],
                "kills": sum(s.killer.kills.values()),
                "expected refusals": sum(v["refused"] for v in s.worker_totals.values())})
    for j, kinds in zip(s.junk, (None, "slowloris", "never_reads")):
        out[f"junk ({kinds or 'quick kinds'})"] = sum(j.counts.values())
    return out


def final(s, start, end):
    """Prints the report; returns the exit status."""
    errors = list(s.errors) + s.writer.errors + s.cli.errors + s.killer.errors
    for j in s.junk:
        errors += j.errors
    print("\n==== engramd soak report")
    print(f"duration {s.seconds:.0f} s (+ warm-up), seed {s.seed} (SOAK_SEED reruns it)")
    flat_ok = True
    if end is not None:
        print("daemon at the quiet points (after warm-up / at the end):")
        for name, q in (("start", start), ("end", end)):
            heap = (f"; malloc {q['in_use'] / probe.MiB:.1f} MiB in use of "
                    f"{q['malloc_system'] / probe.MiB:.1f} MiB") if "in_use" in q else ""
            print(f"  {name + ':':6s} {probe.show(q)}{heap}")
        print("flatness (RssAnon itself is not judged: the daemon keeps freed response memory "
              "in malloc's arenas by design; judged are malloc's bytes in use and the "
              "anonymous memory outside its arenas):")
        for line, ok in probe.flatness(start, end, start["sanitizer"]):
            print(f"  {'ok  ' if ok else 'FAIL'} {line}")
            flat_ok = flat_ok and ok
        if not start["sanitizer"]:
            print("  " + sensitivity(start["metrics"], end["metrics"]))
        print("/metrics at the quiet points (start -> end):")
        for k in METRICS:
            a, b = start["metrics"].get(k), end["metrics"].get(k)  # noqa: E741
            if a is not None and b is not None:
                print(f"  {k} {a:.0f} -> {b:.0f}")
    print("summary (the warm-up and the quiet points included):")
    for line in summary(s):
        print(line)
    logs = probe.log_lines(s.daemon.log_path)
    daemon_errors = logs.get("error", [])
    print(f"daemon log: {len(daemon_errors)} error, {len(logs.get('warn', []))} warn, "
          f"{len(logs.get('info', []))} info lines; warn lines by shape:")
    for shape, n in probe.grouped(logs.get("warn", [])):
        print(f"  {n:6d} x {shape}")
    idle = [k for k, v in activity(s).items() if not v]
    if idle:
        errors.append(f"nothing done of: {', '.join(idle)} (a soak that did not do it proves "
                      f"nothing about it)")
    for line in logs.get("other", []):
        errors.append(f"daemon log line of no level: {line}")
    errors += [f"daemon log: {line}" for line in daemon_errors]
    print(f"errors: {len(errors)}")
    for e in errors:
        print(f"  {e}")
    ok = not errors and flat_ok and end is not None
    print(f"RESULT: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
