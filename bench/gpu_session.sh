#!/usr/bin/env bash
# One GPU session (the `device` tool): LM speed figures, then the mr recipe's `paper` preset for the
# stages that need the GPU. The CPU-side stages (fetch, corpus, tokenizer, encode, baselines) are run
# beforehand on the CPU machine with the same --set options and carried in work/:
#   ulmfit-multi recipe mr --preset paper $SETS --mirror ../shared/data --work-dir work --until baselines
# Usage there: bash bench/gpu_session.sh   (writes figures and tables under $OUT)
set -uo pipefail
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
SETS=(--set 'recipe.tasks=["mahasent-gt","mahasent-mr","mahasent-st"]' --set 'evaluate.seeds=[0]')
{
  python3 bench/bench_lm.py --device cuda --steps 40 --threads 0 --impls ulmfit_multi,nn_lstm
  python3 bench/bench_lm.py --device cuda --steps 40 --threads 0 --impls ulmfit_multi,nn_lstm --vocab 15000 --emb 400 --hidden 1152 --bs 64
} 2>&1 | tee "$OUT/bench_lm.txt" | grep -v Warning
start=$(date +%s)
for stage in pretrain finetune_lm classifier evaluate table; do
  left=$(( ${BUDGET_S:-420} - ($(date +%s) - start) ))
  [ "$left" -gt 5 ] || { echo "no time left for $stage"; break; }
  timeout "$left" python3 -m ulmfit_multi recipe mr --preset paper "${SETS[@]}" --work-dir work --only "$stage" \
      --device cuda -q 2>&1 | grep -v -E "Warning|warn\(" | tee -a "$OUT/recipe.log" | tail -3
done
echo "recipe wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/recipe.log"
run=work/runs/mr-paper
cp "$run/10-table/results.md" "$run/10-table/results.json" "$OUT/" 2>/dev/null
for st in pretrain finetune_lm classifier; do
  python3 - "$run" "$st" <<'PY' >> "$OUT/stage_summaries.json"
import json, sys, pathlib
d = pathlib.Path(sys.argv[1]); st = sys.argv[2]
for p in sorted(d.glob(f"[0-9][0-9]-{st}")):
    print(json.dumps({"stage": st, **json.loads((p / "_stage.json").read_text())["summary"], "seconds": json.loads((p / "_stage.json").read_text())["seconds"]}))
PY
done
ls -la "$OUT"
