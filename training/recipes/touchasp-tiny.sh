#!/bin/bash
# Train models/touchasp-tiny (elastic) or its static twin (every step at k_max, model.elastic_k_choices=[4]): the
# same eleven stages, each from the previous stage's final/, so `training.release` can compare them at one budget.
#   bash training/recipes/touchasp-tiny.sh elastic   # runs/touchasp-tiny, runs/touchasp-tiny-stage2 ... -stage11
#   bash training/recipes/touchasp-tiny.sh static    # runs/touchasp-tiny-static, runs/touchasp-tiny-static-stage2 ...
# Needs corpora/mixed (`touchasp corpus --recipe mixed --hours 10 --out corpora/mixed`). Run it again after any
# interruption, even kill -9: a stage whose final/ exists is skipped, an unfinished one continues from its newest
# checkpoint (--resume; one every 500 steps), and a stage not begun starts at step 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
touchasp=${TOUCHASP:-.venv/bin/touchasp}
case ${1:-} in
  elastic) runs=runs/touchasp-tiny twin=() ;;
  static) runs=runs/touchasp-tiny-static twin=(--set "model.elastic_k_choices=[4]") ;;
  *) echo "usage: $0 elastic|static" >&2; exit 2 ;;
esac

stage() {  # output folder, then --set pairs on top of training/configs/tiny.yaml
  local out=$1
  shift
  if [[ -d $out/final ]]; then
    echo "$out: done"
    return
  fi
  "$touchasp" train --config training/configs/tiny.yaml "${twin[@]}" --set "output_dir=$out" "$@" --resume
}

# stage 1 trains the tokenizer and fits global CMVN; stage 2 weights the task tokens 10x in the attention loss
stage "$runs"
stage "$runs-stage2" --set "model.init_from=$runs/final" --set model.task_loss_weight=10 --set optimizer.lr=1.0e-3 \
    --set schedule.warmup_steps=100 --set seed=1
prev=$runs-stage2/final
# stages 3-11 add CTC weight 0.5; stage:steps:seed:eval interval
for spec in 3:7000:2:3500 4:6000:3:3000 5:4000:4:4000 6:6000:5:3000 7:4000:6:4000 8:6000:7:3000 9:6000:8:3000 \
    10:6000:9:3000 11:6000:10:3000; do
  IFS=: read -r n steps seed interval <<< "$spec"
  stage "$runs-stage$n" --set "model.init_from=$prev" --set model.task_loss_weight=10 --set model.ctc_weight=0.5 \
      --set optimizer.lr=1.0e-3 --set schedule.warmup_steps=100 --set "seed=$seed" --set "max_steps=$steps" \
      --set "eval.interval=$interval"
  prev=$runs-stage$n/final
done
