"""Runs one command and writes its own figures as JSON to a file: wall seconds, user and system CPU seconds
(with its children's), peak resident set in KiB.

    python -S bench/spawn.py FIGURES.json COMMAND [ARG ...]

Why a separate process: on Linux a child's peak RSS (ru_maxrss) includes the memory of the process that
spawned it, recorded when it calls exec. A benchmark parent of 100 MiB made every tool look at least
100 MiB big. Started with `python -S`, this wrapper is a few MiB, so the figure is the tool's own.
"""

import json
import os
import sys
import time


def main() -> None:
    out, cmd = sys.argv[1], sys.argv[2:]
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - started
    with open(out, "w") as handle:
        json.dump({"seconds": seconds, "user": usage.ru_utime, "system": usage.ru_stime,
                   "maxrss_kib": usage.ru_maxrss}, handle)
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
