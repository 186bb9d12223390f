#!/usr/bin/env bash
# One GPU session (the `device` tool): LM speed figures (ours, a plain fused nn.LSTM stack, fastai's AWD_LSTM),
# then the GPU stages (pretrain .. table) of one or more recipe runs, all at once on the one GPU.
#
# The CPU-side stages (fetch, corpus, tokenizer, encode, baselines) run beforehand on the CPU machine with the
# same options, into a work folder that travels with the call (`carry`):
#   ulmfit-multi recipe ta --preset paper --set 'recipe.tasks=["fire2020-ta"]' --set 'evaluate.seeds=[0]' \
#       --mirror ../shared/data --work-dir .devdata/work --until baselines
# fastai (optional) travels as wheels in .whl (see /work/.library/device/README.md).
#
# Usage there:
#   WORK=.devdata/work BUDGET_S=420 bash bench/gpu_session.sh \
#       "ta --preset paper --set recipe.tasks=[\"fire2020-ta\"] --set evaluate.seeds=[0]" "ml ..."
# Each argument is one recipe command's arguments (split on spaces, so no spaces inside a --set value).
# Writes under $OUT: gpu_bench.txt, one <recipe>.log per run (stage log, then its results table), and
# artifacts.tar.gz (every run's stage summaries, histories, results and plots).
set -uo pipefail
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; WORK=${WORK:-work}; BUDGET_S=${BUDGET_S:-420}; BENCH=${BENCH:-1}; DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
  if [ "$BENCH" = 1 ]; then
    python3 bench/bench_lm.py --device cuda --steps 40 --warmup 5 --threads 0 --impls ulmfit_multi,fastai,nn_lstm
    python3 bench/bench_lm.py --device cuda --steps 40 --warmup 5 --threads 0 --impls ulmfit_multi,fastai,nn_lstm \
      --vocab 15000 --emb 400 --hidden 1152 --bs 64
  fi
} 2>&1 | grep -v -i warning | tee "$OUT/gpu_bench.txt"

start=$(date +%s)
run_one() {  # $1: one recipe command's arguments
  local -; set -f; local args=($1) name=$(echo "$1" | cut -d' ' -f1) log="$OUT/$(echo "$1" | cut -d' ' -f1).log"
  for stage in pretrain finetune_lm classifier evaluate table; do
    local left=$(( BUDGET_S - ($(date +%s) - start) ))
    [ "$left" -gt 5 ] || { echo "no time left for $stage" >> "$log"; return; }
    echo "== $stage ($left s left)" >> "$log"
    timeout "$left" python3 -m ulmfit_multi recipe "${args[@]}" --work-dir "$WORK" --only "$stage" --device "$DEVICE" -q \
      2>&1 | grep -v -E "Warning|warn\(" >> "$log"
  done
  echo "recipe wall time: $(( $(date +%s) - start )) s" >> "$log"
}
for spec in "$@"; do run_one "$spec" & done
wait
for spec in "$@"; do
  name=$(echo "$spec" | cut -d' ' -f1)
  for md in "$WORK"/runs/"$name"-*/10-table/results.md; do [ -f "$md" ] && { echo "== $md"; cat "$md"; } >> "$OUT/$name.log"; done
done
tar -czhf "$OUT/artifacts.tar.gz" --exclude='*.pt' --exclude='*.bin' --exclude='*.tokens' \
  $(ls -d "$WORK"/runs/*/0[6-9]-* "$WORK"/runs/*/10-* "$WORK"/runs/*/config.resolved.toml 2>/dev/null) 2>/dev/null
ls -la "$OUT"
