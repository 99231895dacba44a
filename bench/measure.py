"""Wall time and peak RSS of one child process (the memory a step needs, measured alone)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping

# Run the command from a small launcher process and report the child's rusage. Measuring
# from the caller directly would count the parent's own memory: Python starts children
# with vfork, and Linux charges the parent's high-water mark to a vforked child's
# ru_maxrss. The launcher is ~10 MB, so that is the most it can add.
_LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}))
"""


def run_measured(cmd: list[str], env: Mapping[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one child process; raises if it fails.

    ``env``, when given, is the whole environment of the launcher and so of the child."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"launcher failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["code"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({report['code']}): {proc.stderr[-2000:]}")
    return wall, report["maxrss_kib"] * 1024  # Linux reports KiB
