"""How long a search's Ray worker takes to begin: from an actor's submission to its `__init__`, and what
the instance keeps around meanwhile. Three ways to start one, each on a fresh local Ray instance in a
process of its own:

- `runtime_env`: Ray's defaults, the actor unniced by a runtime_env of its own (the search before the
  thirty-second session; still how it joins a cluster or uses a Ray the caller started);
- `settings`: `cluster.worker_settings()`, as the search starts its own instance now (workers unniced and
  importing torch, dynamo and inductor as they start, none started ahead);
- `settings+prestart`: the same with Ray's default of starting idle workers when the driver connects.

    .venv/bin/python bench/worker_start.py [--repeat 3] [--num-cpus N] [--out bench/out/worker_start.json]

`--num-cpus` is Ray's CPU count (the machine's by default), which sets how many idle workers Ray starts
ahead. Each actor imports what the settings preload (torch; on a GPU machine dynamo and inductor too), as a
worker's warm-up otherwise does: the table gives the time from submission to `__init__` and to those imports
done (medians), and the actor and idle workers' processes 5 s later; JSON has every sample. What a warm-up does
after that is the same in all three: `bench/search_run.py` measures a real run's."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WAYS = ("runtime_env", "settings", "settings+prestart")

ONE = """
import json, sys, time
import psutil, ray
from sola_search.search.cluster import WORKER_ENV, worker_settings

way, cpus = sys.argv[1], int(sys.argv[2])
config = {} if way == "runtime_env" else worker_settings()
if way == "settings+prestart":
    config.pop("prestart_worker_first_driver")
ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
         _system_config=config)
time.sleep(1.0)  # the driver's own set-up before its first actor (a search's: 0.5-1.1 s)


class Probe:
    def __init__(self, modules):
        import importlib
        self.began = time.time()
        self.preloaded = "torch" in sys.modules
        for name in modules:  # what the settings preload: every way ends with them imported
            importlib.import_module(name)
        self.ready = time.time()

    def report(self):
        import os
        return self.began, self.ready, self.preloaded, os.getpriority(os.PRIO_PROCESS, 0)


actor = ray.remote(num_cpus=1)(Probe)
if way == "runtime_env":
    actor = actor.options(runtime_env={"env_vars": WORKER_ENV})
submitted = time.time()
probe = actor.remote(worker_settings()["preload_python_modules"])  # kept: a dropped handle ends its actor
began, ready, preloaded, nice = ray.get(probe.report.remote())
time.sleep(5.0)  # idle workers started ahead have finished their imports by then
workers = [p for p in psutil.process_iter(["cmdline", "memory_info"])  # the actor's and any idle worker's
           if (p.info["cmdline"] or [""])[0].startswith(("ray::Probe", "ray::IDLE"))]
rss = sum(p.info["memory_info"].rss for p in workers) / 2**30
print(json.dumps(dict(way=way, start_s=round(began - submitted, 3), ready_s=round(ready - submitted, 3),
                      preloaded=preloaded, nice=nice,
                      workers=len(workers), workers_gib=round(rss, 2))))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="samples of each way, interleaved")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="Ray's CPUs (default: the machine's)")
    ap.add_argument("--out", default="bench/out/worker_start.json")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    samples = []
    for i in range(args.repeat):
        for way in WAYS:
            out = subprocess.run([sys.executable, "-c", ONE, way, str(args.num_cpus)], env=env, capture_output=True,
                                 text=True, timeout=300)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not lines:
                sys.exit(f"worker_start: the {way} sample failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
            samples.append(json.loads(lines[-1]) | {"sample": i})
            print(f"  {way}: {samples[-1]}", flush=True)
    rows = []
    for way in WAYS:
        mine = [s for s in samples if s["way"] == way]
        rows.append(dict(way=way, start_s=statistics.median(s["start_s"] for s in mine),
                         ready_s=statistics.median(s["ready_s"] for s in mine),
                         preloaded=all(s["preloaded"] for s in mine), nice=mine[0]["nice"],
                         workers=max(s["workers"] for s in mine), workers_gib=max(s["workers_gib"] for s in mine)))
    import ray

    print(f"\nRay {ray.__version__}, {args.num_cpus} CPUs for Ray, {os.cpu_count()} on the machine, "
          f"{args.repeat} samples each (medians)")
    print(f"{'way':<18} {'-> __init__':>11} {'-> imports done':>15} {'preloaded':>9} {'nice':>4} "
          f"{'workers':>7} {'their RSS':>9}")
    for r in rows:
        print(f"{r['way']:<18} {r['start_s']:>9.2f} s {r['ready_s']:>13.2f} s {str(r['preloaded']):>9} {r['nice']:>4} "
              f"{r['workers']:>7} {r['workers_gib']:>5.2f} GiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(dict(bench="worker_start", num_cpus=args.num_cpus, cpu_count=os.cpu_count(),
                                              time=time.strftime("%Y-%m-%d %H:%M:%S"), argv=" ".join(sys.argv),
                                              rows=rows, samples=samples), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
