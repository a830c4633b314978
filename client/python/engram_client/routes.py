"""What an address spec names: replicas, and tables routed to them.

The grammar is libengram's (client/engram.h, "Several daemons"):

    tcp:h1:7070                          one daemon
    tcp:h1:7070,tcp:h2:7070              replicas of the same tables
    layer1=tcp:h1:7070,tcp:h2:7070;layer14=tcp:h3:7070;unix:/run/e.sock
                                         tables routed to replicas; the group
                                         without names serves the others
    @/etc/engram/routes.json             the same as a JSON file:
        {"tables": {"layer1": ["tcp:h1:7070", "tcp:h2:7070"], ...},
         "default": ["unix:/run/e.sock"]}

A ',' or ';' separates only where an address (unix:, tcp:) or, after ';',
"NAMES=" follows, so a single address containing them stays one address.
Python callers may also pass a list of addresses, or the JSON object as a
dict. Groups with the same addresses are one group.
"""
import collections
import json

Group = collections.namedtuple("Group", "tables dflt addrs")


def _starts_addr(s, i=0):
    return s.startswith("unix:", i) or s.startswith("tcp:", i)


def _names_head(s, i):
    """Length of a "NAMES=" head at s[i:], '=' included, or 0."""
    if _starts_addr(s, i):
        return 0
    j = i
    while j < len(s) and s[j] != "=":
        if s[j] in ":;":
            return 0
        j += 1
    return j - i + 1 if j < len(s) and j > i else 0


def _addr_end(s, i):
    while i < len(s):
        if s[i] in ",;" and _starts_addr(s, i + 1):
            return i
        if s[i] == ";" and _names_head(s, i + 1):
            return i
        i += 1
    return i


def _parse_addrs(s, i):
    """(addresses, index past them) of a ','-separated list at s[i:]."""
    addrs = []
    while True:
        if not _starts_addr(s, i):
            raise ValueError(f"expected unix:PATH or tcp:HOST:PORT at {s[i:i + 40]!r}")
        j = _addr_end(s, i)
        addrs.append(s[i:j])
        if j < len(s) and s[j] == ",":
            i = j + 1
            continue
        return addrs, j


def _parse_string(s):
    groups, i = [], 0
    while True:
        head = _names_head(s, i)
        names = []
        if head:
            names = s[i:i + head - 1].split(",")
            if not all(names):
                raise ValueError("an empty table name before '='")
            i += head
        addrs, i = _parse_addrs(s, i)
        groups.append(Group(names, not head, addrs))
        if i == len(s):
            return groups
        i += 1


def _json_addrs(v, what):
    if isinstance(v, str):
        addrs, end = _parse_addrs(v, 0)
        if end != len(v):
            raise ValueError(f"{what}: unexpected {v[end:end + 40]!r}")
        return addrs
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"{what}: want a list of addresses")
    for k, a in enumerate(v):
        if not isinstance(a, str) or not _starts_addr(a):
            raise ValueError(f"{what}[{k}]: want unix:PATH or tcp:HOST:PORT")
    return list(v)


def _parse_object(obj):
    if not isinstance(obj, dict):
        raise ValueError('want an object with "tables" and/or "default"')
    groups = []
    for key, v in obj.items():
        if key == "default":
            groups.append(Group([], True, _json_addrs(v, "default")))
        elif key == "tables" and isinstance(v, dict):
            for name, addrs in v.items():
                if not name:
                    raise ValueError("an empty table name")
                groups.append(Group([name], False, _json_addrs(addrs, name)))
        else:
            raise ValueError(f'unknown key "{key}" (want "tables": {{...}}, "default")')
    return groups


def _merge(groups):
    merged = []
    for g in groups:
        for k, m in enumerate(merged):
            if m.addrs == g.addrs:
                merged[k] = Group(m.tables + g.tables, m.dflt or g.dflt, m.addrs)
                break
        else:
            merged.append(Group(list(g.tables), g.dflt, list(g.addrs)))
    seen = set()
    for g in merged:
        for t in g.tables:
            if t in seen:
                raise ValueError(f"table {t!r} is routed twice")
            seen.add(t)
    if sum(g.dflt for g in merged) > 1:
        raise ValueError("more than one group without table names")
    return merged


def parse(spec):
    """[Group(tables, dflt, addrs)] of a spec (string, list of addresses,
    or a routes dict); ValueError saying what is wrong."""
    if isinstance(spec, dict):
        groups = _parse_object(spec)
    elif isinstance(spec, (list, tuple)):
        groups = [Group([], True, _json_addrs(list(spec), "addresses"))]
    elif spec.startswith("@"):
        try:
            with open(spec[1:]) as f:
                obj = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"routes file {spec[1:]}: {e}") from None
        groups = _parse_object(obj)
    else:
        groups = _parse_string(spec)
    if not groups:
        raise ValueError("names no daemon")
    return _merge(groups)


def is_fleet(spec):
    """Whether spec names more than one daemon or routes tables."""
    if not isinstance(spec, str) or spec.startswith("@"):
        return True
    try:
        groups = parse(spec)
    except ValueError:
        return False  # a plain Client then says what is wrong
    return len(groups) != 1 or bool(groups[0].tables) or len(groups[0].addrs) != 1
