#!/usr/bin/env bash
# LFW View 2 on one GPU in about ten minutes: the recipe is picked on View 1 (never on a test fold),
# then its ten folds train side by side. For a GPU machine that has torch, torchvision and timm but
# where nothing else is installed and nothing can be fetched:
#
#   here:   python scripts/pack_lfw.py --out data            # the 49 MiB copy of LFW that travels
#           pip download --no-deps -d .whl thop==0.1.1.post2209072238   # the one package it lacks
#   there:  pip install --no-index --no-deps --target /tmp/site .whl/*.whl
#           PYTHONPATH=/tmp/site bash scripts/gpu_lfw.sh all           # or: view1, then view2 [PRESET]
#
# view1  runs the phase $PHASE (default gpu_view2) on View 1 over seeds 42, 123, 456, $JOBS runs at
#        a time, and prints the pick: the preset with the lowest mean View 1 EER over the seeds (the
#        rule is fixed here, before any fold is seen). Then it measures the pick's threshold shift on
#        its own View 1 runs (scripts/probe_threshold_shift.py --runs: no training): how far the best
#        threshold on people it was trained on sits above the one strangers need.
# view2  runs `facerec benchmark lfw` with that preset (or the one named), all ten folds at once, its
#        threshold lowered by the shift View 1 measured for that preset (none if it measured none).
# $TEST_CROPS (1 or 5; default: the recipe's own) scores both the shift and the folds.
# Both resume what an earlier call left: a stopped call loses only the epochs in flight.
# With $OUT set, the phase report, its index and the benchmark records are copied there.
# A smoke check on a CPU: DEVICE=cpu JOBS=2 VIEW1_ARGS="--quick --seeds 42,123"
#   VIEW2_ARGS="--folds 1 --set epochs=1" bash scripts/gpu_lfw.sh all   (extra flags of each step)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
PHASE=${PHASE:-gpu_view2}
JOBS=${JOBS:-9}
DEVICE=${DEVICE:-cuda}
read -r -a VIEW1_EXTRA <<< "${VIEW1_ARGS:-}"
read -r -a VIEW2_EXTRA <<< "${VIEW2_ARGS:-}"
CROPS=(${TEST_CROPS:+--test-crops "$TEST_CROPS"})
VIEW1=runs/gpu-view1
VIEW2=runs/gpu-view2

save() {  # copy what exists of the records to $OUT (flat: some remote runners return only top-level files)
    [ -n "${OUT:-}" ] || return 0
    for f in "$@"; do [ -f "$f" ] && cp "$f" "$OUT/$(echo "${f#runs/}" | tr / _)"; done
    return 0
}

pick() {  # the preset with the lowest mean EER over the seeds, from the phase report's own figures
    "$PY" - "$VIEW1" "$PHASE" <<'EOF'
import sys
from facerec.experiments.compare import groups_from_index
from facerec.experiments.index import Index
from facerec.experiments.stats import mean_std
groups = groups_from_index(Index(sys.argv[1]), sys.argv[2])
eer = {name: mean_std([r.metrics["eer"] for r in runs]) for name, runs in groups.items()}
for name, (m, s) in sorted(eer.items(), key=lambda kv: kv[1][0]):
    print(f"{name}: View 1 EER {m:.2f} ± {s:.2f} over {len(groups[name])} seed(s)", file=sys.stderr)
print(min(eer, key=lambda k: (eer[k][0], k)))
EOF
}

view1() {
    "$PY" -m facerec experiment run "$PHASE" --data lfw --out "$VIEW1" --set device="$DEVICE" --jobs "$JOBS" \
        --devices "$DEVICE" --keep-last --no-progress "${VIEW1_EXTRA[@]}"
    save "$VIEW1/index.csv" "$VIEW1/report/$PHASE.md"
    pick > "$VIEW1/pick.txt"
    local preset
    preset=$(cat "$VIEW1/pick.txt")
    echo "View 1 pick: $preset"
    if [ "$(find "$VIEW1/$PHASE/$preset" -maxdepth 1 -name 'seed*' | wc -l)" -lt 2 ]; then
        echo "threshold shift: not measured (it needs two seeds' runs)"
        return 0
    fi
    "$PY" scripts/probe_threshold_shift.py --preset "$preset" --runs "$VIEW1/$PHASE/$preset" --backends none \
        --out "$VIEW1/shift-$preset" "${CROPS[@]}"
    save "$VIEW1/shift-$preset/shift.json"
}

view2() {
    local preset=${1:-$(cat "$VIEW1/pick.txt")} shift=0
    if [ -f "$VIEW1/shift-$preset/shift.json" ]; then
        shift=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["shift"]["none"])' \
                "$VIEW1/shift-$preset/shift.json")
    fi
    echo "View 2: $preset, threshold shift $shift"
    "$PY" -m facerec benchmark lfw --preset "$preset" --out "$VIEW2-$preset" --set device="$DEVICE" --jobs 10 \
        --devices "$DEVICE" --threshold-shift="$shift" --no-progress "${CROPS[@]}" "${VIEW2_EXTRA[@]}"
    save "$VIEW2-$preset/benchmark.md" "$VIEW2-$preset/benchmark.json"
}

case "${1:-}" in
    view1) view1 ;;
    view2) view2 "${2:-}" ;;
    all) view1; view2 ;;
    *) echo "usage: bash scripts/gpu_lfw.sh view1 | view2 [PRESET] | all" >&2; exit 2 ;;
esac
