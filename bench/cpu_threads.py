"""How torch's CPU threads fare on a machine whose cores are busy: the same proxy trainings with 1 or 2
threads and OpenMP's wait settings, alone and beside a busy 2-thread torch process (as another test
process's Ray worker, or another user's job, is). Why: threads that spin waiting for a core made CI's
tests 2-29x slower (docs/performance.md, "The test suite on two cores").

    .venv/bin/python bench/cpu_threads.py [--steps 40] [--out bench/out/cpu_threads.json]

Each setting runs in a fresh process (OpenMP reads its environment once): two `quick` trainings of micro
on a generated 10-class npz, timed after a 2-step warm-up. Prints a table and writes JSON."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = [  # (label, torch threads, extra environment)
    ("2 threads, default", 2, {}),
    ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("2 threads, GOMP_SPINCOUNT=10000", 2, {"GOMP_SPINCOUNT": "10000"}),
    ("1 thread", 1, {}),
]

BUSY = """
import time, torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
while True:
    for _ in range(50):
        a = torch.tanh(a @ a.T / 256)
"""

TRAIN = """
import json, sys, time, torch
from sola_search.proxies import train_proxy
from sola_search.proxies.config import PRESETS
cfg = PRESETS["quick"].replace(variant="micro", data=sys.argv[1], steps=int(sys.argv[2]))
train_proxy("SS-LL-LLLL-LS", cfg.replace(steps=2))
t = time.perf_counter()
for p in ("SS-LL-LLLL-LS", "LL-LL-LLLL-LL"):
    r = train_proxy(p, cfg)
print(json.dumps(dict(seconds=round(time.perf_counter() - t, 2), threads=torch.get_num_threads(), val_loss=r.val_loss)))
"""


def bands(path: Path) -> str:
    """The tests' learnable data: each class brightens its own band of rows."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(400) % 10
    x = rng.integers(0, 60, (400, 16, 16)).astype(np.uint8)
    for i, c in enumerate(y):
        x[i, c : c + 4] += 150
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


def train(data: str, steps: int, threads: int, extra: dict) -> dict:
    env = os.environ | {"OMP_NUM_THREADS": str(threads)} | extra
    out = subprocess.run([sys.executable, "-c", TRAIN, data, str(steps)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", default="bench/out/cpu_threads.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = bands(Path(tmp) / "bands.npz")
        for busy in (False, True):
            for label, threads, extra in SETTINGS:
                hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
                try:
                    if hog:
                        time.sleep(2)
                    r = train(data, args.steps, threads, extra)
                finally:
                    if hog:
                        hog.kill()
                        hog.wait()
                rows.append(dict(setting=label, beside_busy=busy, **r))
                print(f"{'beside a busy process' if busy else 'alone':22} {label:38} {r['seconds']:7.1f} s  "
                      f"val loss {r['val_loss']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(steps=args.steps, cpus=os.cpu_count(), rows=rows), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
