#!/usr/bin/env python3
"""Store commands per sign-in, by command and kind of key, from a `redis-cli MONITOR` capture.

    storecmds.py MONITOR_FILE LOGINS KEY_PREFIX

MONITOR prints one line per command Redis executed: `<time> [<db> <client>] "CMD" "arg" …`.
Commands that scripts (EVAL) run inside Redis are counted apart. Each key is reduced to its kind by keeping the words of its path and writing `*` for the
ids in it (`tessera:flow:4f…` becomes `flow:*`), so the lines say what a sign-in costs the
store and why. Prints a table, most frequent first, and one `RESULT bench=storecmds …` line.
"""

import re
import shlex
import sys
from collections import Counter

WORD = re.compile(r"^[a-z][a-z_-]{0,23}$")
# The argument that names the key, by command; EVAL/EVALSHA name theirs after script and count.
KEY_AT = {"EVAL": 3, "EVALSHA": 3, "FCALL": 3}
# Connection chatter, not work a sign-in asked for.
IGNORED = {"PING", "INFO", "MONITOR", "CLIENT", "HELLO", "SELECT", "SUBSCRIBE", "PSUBSCRIBE"}


def key_kind(key, prefix):
    if prefix and key.startswith(prefix):
        key = key[len(prefix):]
    return ":".join(part if WORD.match(part) else "*" for part in key.split(":"))


def parse_line(line):
    """(COMMAND, args, from_script) of one MONITOR line, or None for anything else."""
    start = line.find('] "')
    if start < 0:
        return None
    # `[0 lua]`: a command a script ran inside Redis, not one a client sent.
    from_script = line[:start].endswith("lua")
    try:
        words = shlex.split(line[start + 2:])
    except ValueError:
        return None  # a value with an odd escape: it still counts, as an unnamed key
    if not words:
        return None
    return words[0].upper(), words[1:], from_script


def main():
    path, logins, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    counts, in_scripts = Counter(), Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parsed = parse_line(line)
            if parsed is None:
                continue
            cmd, args, from_script = parsed
            if cmd in IGNORED:
                continue
            at = KEY_AT.get(cmd, 1)
            kind = key_kind(args[at - 1], prefix) if len(args) >= at else "-"
            if from_script:
                in_scripts[(cmd, kind)] += 1
                continue
            counts[(cmd, kind)] += 1
            total += 1
    if logins <= 0:
        print("storecmds.py: no logins to divide by")
        return 1
    print(f"store commands per sign-in, by command and key ({logins} sign-ins, MONITOR)")
    for (cmd, kind), n in counts.most_common():
        print(f"  {n / logins:6.2f}  {cmd:<10} {kind}")
    print(f"  {total / logins:6.2f}  in all, sent by Tessera (a pipeline's commands count one each)")
    scripted = sum(in_scripts.values())
    print(f"  {scripted / logins:6.2f}  more run by scripts inside Redis (" + ", ".join(
        f"{cmd} {kind}" for (cmd, kind), _ in in_scripts.most_common(4)) + ")")
    print(f"RESULT bench=storecmds logins={logins} per_login={total / logins:.2f} "
          f"in_scripts={scripted / logins:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
