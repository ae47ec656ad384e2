"""Running Triton kernels on the CPU, as the kernel tests do: Triton's interpreter (TRITON_INTERPRET=1) must be
set before Triton is imported, so the checks run in a subprocess and print their results as one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def interpret(code: str) -> dict:
    """Run `code` (which ends by printing "RESULT " and a JSON object) under Triton's interpreter; its object."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])
