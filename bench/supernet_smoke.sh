#!/usr/bin/env bash
# The supernet estimator's GPU paths (CUDA-graph capture, compiled blocks, bf16 autocast with per-sample
# mixing) in one short device call (issue 15), run from the repository root: bash bench/supernet_smoke.sh OUT
#   (a) run --estimator supernet on the default preset (compiled blocks + CUDA graphs), then its pareto;
#   (c) the same run with --compile off (CUDA graphs stay on: no CLI switch turns them off), beside (a) on the
#       same GPU. Since the first H200 run (docs/performance.md, tenth session: compiled scoring killed the
#       worker) the supernet never compiles its blocks, so (a) and (c) train alike: (a) against (c) is now a
#       check that two runs of one configuration agree;
#   (b) proxy PATTERN --supernet RUN --json on (a)'s supernet (or (c)'s if (a) made none);
#   (d) the same weights scored twice (equal?) and against the scores (a)'s study holds, and (a)'s scores
#       against (c)'s (two trainings: equal up to bf16 and kernel differences).
# Every step is logged and may fail; the script goes on. At most 7 files under OUT. CPU check:
#   D_PATTERNS=2 VARIANT=micro PRESET=quick SUPERNET_STEPS=4 TRIALS=12 DATA=recall:val=1000,test=1000 bash bench/supernet_smoke.sh /tmp/o
# Invoked as python -m sola_search.cli: on the device the package and its dependencies are on PYTHONPATH only.
set -x
OUT=${1:?OUT directory}
mkdir -p "$OUT"
exec > >(tee "$OUT/smoke.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}
VARIANT=${VARIANT:-small}
PRESET=${PRESET:-default}
BUDGET=${BUDGET:-8softmax}
DATA=${DATA:-recall:val=2000}      # 2,000 validation images (not 20,000): 300 patterns score in seconds
SUPERNET_STEPS=${SUPERNET_STEPS:-300}
TRIALS=${TRIALS:-300}
T_RUN=${T_RUN:-150}                # seconds for (a) and (c) each (they run side by side)
T_STEP=${T_STEP:-40}               # seconds for (b) and (d) each
D_PATTERNS=${D_PATTERNS:-64}       # patterns (d) scores twice
R=${RUNS:-/tmp/supernet_smoke_runs}
rm -rf "$R"; mkdir -p "$R"
CLI="$PY -m sola_search.cli"
RUN="$CLI run --estimator supernet --variant $VARIANT --preset $PRESET --budget $BUDGET --data $DATA \
--supernet-steps $SUPERNET_STEPS --trials $TRIALS --runs-dir $R"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>&1 | head -3
git log --oneline -1

# (a) and (c) side by side
( timeout -k 20 "$T_RUN" $RUN --name a; echo "(a) run rc $?" ) > "$OUT/run_a.log" 2>&1 &
A=$!
( timeout -k 20 "$T_RUN" $RUN --name c --compile off; echo "(c) run rc $?" ) > "$OUT/run_c.log" 2>&1 &
C=$!
wait $A $C  # by id: a bare wait would wait for the tee above as well (bash 5.1+), forever
tail -n 15 "$OUT/run_a.log" "$OUT/run_c.log"
{ timeout "$T_STEP" $CLI pareto "$R/a" --no-reports; echo "(a) pareto rc $?"
  timeout "$T_STEP" $CLI pareto "$R/c" --no-reports; echo "(c) pareto rc $?"; } > "$OUT/pareto.txt" 2>&1
cat "$OUT/pareto.txt"

# (b): the best pattern (a) scored, with (a)'s supernet
SN=$R/a; [ -f "$R/a/supernet.json" ] || SN=$R/c
PATTERN=$(timeout "$T_STEP" $CLI pareto "$SN" --format json --no-reports 2>/dev/null \
  | $PY -c "import json, sys; print(max(json.load(sys.stdin), key=lambda r: r['val_top1'])['pattern'])")
echo "pattern ${PATTERN:=all-linear} of $SN"
( timeout "$T_STEP" $CLI proxy "$PATTERN" --supernet "$SN" --json; echo "(b) proxy rc $?" >&2 ) \
  > "$OUT/proxy_b.json" 2> "$OUT/proxy_b.log"
head -c 1500 "$OUT/proxy_b.json"; cat "$OUT/proxy_b.log"

# (d) the same weights scored twice and against the study; (a) against (c); the supernets' records
timeout "$T_STEP" $PY - "$R" "$SN" "$OUT/compare.json" "$D_PATTERNS" <<'EOF'
import json, sys, time, traceback
from pathlib import Path
runs, sn_dir, out, n = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
report = {"supernet": str(sn_dir)}
def keep():
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
for name in ("a", "c"):  # what each run stored: how it trained, in which mode, how it ended
    d = runs / name
    try:
        meta = json.loads((d / "supernet.json").read_text())
        meta.pop("config", None)
        report[f"supernet_{name}"] = meta
    except Exception as e:
        report[f"supernet_{name}"] = repr(e)
    try:
        report[f"events_{name}"] = [e for e in map(json.loads, (d / "events.jsonl").read_text().splitlines())
                                    if e["event"] not in ("trial_started", "trial_finished")]
    except Exception as e:
        report[f"events_{name}"] = repr(e)
keep()
try:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scores = {}
    for name in ("a", "c"):
        try:
            s = optuna.load_study(study_name=name, storage=f"sqlite:///{runs / name / 'study.db'}")
            scores[name] = {t.user_attrs["pattern"]: t.values[0] for t in s.trials if t.values}
        except Exception as e:
            report[f"study_{name}"] = repr(e)
    report["trials"] = {k: len(v) for k, v in scores.items()}
    if len(scores) == 2:
        common = sorted(set(scores["a"]) & set(scores["c"]))
        if len(common) > 1:
            from sola_search.results.fidelity import kendall_tau
            xa, xc = [scores["a"][p] for p in common], [scores["c"][p] for p in common]
            report["a_vs_c"] = dict(patterns=len(common), tau=kendall_tau(xa, xc),
                                    max_abs_diff=max(abs(x - y) for x, y in zip(xa, xc)),
                                    mean_a=sum(xa) / len(xa), mean_c=sum(xc) / len(xc))
    keep()
    import torch
    from sola_search.proxies import supernet as S
    sn = S.load_supernet(sn_dir)
    pats = sorted(scores.get(sn_dir.name, {}))[:n] or ["all-linear", "all-softmax"]
    t0 = time.perf_counter(); g = sn.score(pats); t1 = time.perf_counter()
    g2 = sn.score(pats); t2 = time.perf_counter()
    report["scored_twice"] = dict(
        patterns=len(pats), mode=g[0].mode, repeat_equal=[r.val_top1 for r in g] == [r.val_top1 for r in g2],
        study_equal=sum(abs(r.val_top1 - scores.get(sn_dir.name, {}).get(p, float("nan"))) < 1e-6
                        for p, r in zip(pats, g)),
        first_call_s=t1 - t0, warm_call_s=t2 - t1,
        patterns_per_min_warm=len(pats) / (t2 - t1) * 60, images=g[0].notes,
        top1=[[p, x.val_top1] for p, x in zip(pats, g)][:16],
        max_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None)
except Exception:
    report["error"] = traceback.format_exc()
keep()
print(json.dumps({k: v for k, v in report.items() if not k.startswith(("supernet_", "events_"))}, indent=1,
                 default=str)[:4000])
EOF
echo "(d) compare rc $?"
ls -la "$OUT"
