"""CPU accounting from /proc: what a group of worker processes used during a step."""

from __future__ import annotations

import os


def group_cpu_s(pgids: set[int]) -> float | None:
    """CPU seconds (user + system) of the live processes in these process groups, from one
    pass over /proc; None where /proc is not there to tell."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for pid in entries:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone in the meantime
        if int(fields[2]) in pgids:  # after "pid (comm)": state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
