#!/usr/bin/env bash
# GPU check: training speed of cebra_core and CEBRA 0.6.1 on the same NVIDIA GPU, the training step
# through torch.compile, and (WORKFLOW=1) the notebook's job through Snakemake on the GPU.
#
# Needs: this repository, a CUDA build of torch 2.13.0 and the test extras (docs/install.md), e.g.
#   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130
#   pip install -c envs/constraints.txt -e '.[test]'
# Run from anywhere:  benchmarks/gpu_check.sh [RESULTS_DIR]        (default: gpu_check_results)
# Settings (environment):
#   DEVICE=cuda        the torch device (cuda:N for another GPU)
#   SCALE=10           iterations per measurement as a multiple (bench_training.py --scale):
#                      single-session fits of 50*SCALE and 250*SCALE iterations, multi-session 20*SCALE and 70*SCALE
#   REPEATS=3          measurements per case, the best counts (both implementations alike)
#   CASES="achilles cicero multi"   bench_training.py --cases
#   COMPILE_MODES="default reduce-overhead"   torch.compile modes to try ("" for none)
#   WORKFLOW=0         1: also run the notebook's job (4 single-session + 1 multi-session fit at
#                      ITERATIONS, full-size simulated rats, batch 512, then alignment, consistency,
#                      figures) through Snakemake with device DEVICE and gpu resources
#   ITERATIONS=15000   iterations per fit in that run
#   GPU_JOBS=1         fits on the GPU at once (snakemake --resources gpu=GPU_JOBS; 5: all five side by side)
#   SIM_SCALE=1.0      data.simulate.scale of that run (1.0: the real sessions' lengths)
# Everything printed is also written under RESULTS_DIR (training.json, compile_*.json,
# workflow_rules.tsv, and the logs); nothing else on the machine is changed.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-gpu_check_results}" && cd "${1:-gpu_check_results}" && pwd)"
DEVICE="${DEVICE:-cuda}" SCALE="${SCALE:-10}" REPEATS="${REPEATS:-3}" WORKFLOW="${WORKFLOW:-0}"
ITERATIONS="${ITERATIONS:-15000}" GPU_JOBS="${GPU_JOBS:-1}" SIM_SCALE="${SIM_SCALE:-1.0}"
CASES="${CASES:-achilles cicero multi}" COMPILE_MODES="${COMPILE_MODES-default reduce-overhead}"
read -r -a CASE_LIST <<<"$CASES"
cd "$REPO"
exec > >(tee "$OUT/gpu_check.log") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi not found"
python -c "import torch, cebra_core, cebra; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
'cebra_core', cebra_core.__version__, 'cebra', cebra.__version__)"
python - "$DEVICE" <<'EOF'
import sys
from cebra_core.engine.estimator import resolve_device
resolve_device(sys.argv[1])  # stops here, with what torch sees, where the GPU is missing
EOF

echo "== training speed on $DEVICE: cebra_core and CEBRA 0.6.1 ($CASES)"
python benchmarks/bench_training.py --device "$DEVICE" --cases "${CASE_LIST[@]}" --scale "$SCALE" \
    --repeats "$REPEATS" --json "$OUT/training.json"

for mode in $COMPILE_MODES; do  # reduce-overhead: CUDA graphs
    echo "== cebra_core with its training step through torch.compile(mode=\"$mode\")"
    python benchmarks/bench_training.py --device "$DEVICE" --cases "${CASE_LIST[@]}" --scale "$SCALE" \
        --repeats "$REPEATS" --compile "$mode" --skip-cebra --json "$OUT/compile_$mode.json" \
        || echo "torch.compile(mode=\"$mode\") failed (exit $?); see above"
done

if [ "$WORKFLOW" = 1 ]; then
    echo "== the notebook's job through Snakemake on $DEVICE: $ITERATIONS iterations per fit, --resources gpu=$GPU_JOBS"
    WORK="$OUT/workflow"
    rm -rf "$WORK" && mkdir -p "$WORK"
    python - "$WORK/config.yaml" "$DEVICE" "$ITERATIONS" "$SIM_SCALE" <<'EOF'
import sys
import yaml
path, device, iterations, scale = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
config = yaml.safe_load(open("config/sample.yaml"))
config["seeds"] = [0]
config["data"]["simulate"]["scale"] = scale  # 1.0: the real sessions' lengths
config["cebra"].update(batch_size=512 if scale >= 1.0 else config["cebra"]["batch_size"], max_iterations=iterations, checkpoint_every=500)
config.update(device=device, gpu=True)
yaml.safe_dump(config, open(path, "w"))
EOF
    TARGETS=(results/figures/embeddings.png results/figures/consistency.png)
    SNAKE=(python -m snakemake "${TARGETS[@]}" --directory "$WORK" --configfile "$WORK/config.yaml"
        --cores "$(nproc)" --resources "gpu=$GPU_JOBS")
    "${SNAKE[@]}" --until check_sessions --quiet all  # the data first, outside the wall time
    start=$(date +%s.%N)
    "${SNAKE[@]}" --quiet all
    wall=$(python -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    echo "wall time (after the data step): $wall s"
    python - "$WORK" "$OUT/workflow_rules.tsv" <<'EOF'
import csv, sys
from collections import defaultdict
from pathlib import Path
work, out = Path(sys.argv[1]), sys.argv[2]
rules = defaultdict(list)
for tsv in (work / "results/benchmarks").rglob("*.tsv"):  # each job's benchmark: file (s = wall seconds)
    with open(tsv) as f:
        rules[tsv.relative_to(work / "results/benchmarks").parts[0]] += [float(r["s"]) for r in csv.DictReader(f, delimiter="\t")]
with open(out, "w") as f:
    print("rule\tjobs\tseconds_total\tseconds_max", file=f)
    print(f"{'rule':<20}{'jobs':>6}{'s total':>10}{'s max':>10}")
    for rule, seconds in sorted(rules.items()):
        print(f"{rule}\t{len(seconds)}\t{sum(seconds):.1f}\t{max(seconds):.1f}", file=f)
        print(f"{rule:<20}{len(seconds):>6}{sum(seconds):>10.1f}{max(seconds):>10.1f}")
EOF
    grep -H "fit done" "$WORK"/logs/fits/all/seed0/*.log "$WORK"/logs/fits/all/seed0/*/*.log 2>/dev/null \
        | sed "s|^$WORK/logs/fits/all/seed0/||" || true  # each fit's own it/s, from its log
fi
echo "== done: $OUT"
