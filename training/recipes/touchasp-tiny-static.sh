#!/bin/bash
# The static twin of models/touchasp-tiny: the elastic model's stages (README.md) with every step at k_max
# (model.elastic_k_choices=[4]), so that `training.release --static` can score elastic vs static at one budget.
# Run it again after any interruption, even kill -9: a stage whose final/ exists is skipped, an unfinished one
# continues from its newest checkpoint (one every 500 steps), and a stage not begun starts from step 0.
#   nohup setsid bash training/recipes/touchasp-tiny-static.sh >> runs/static.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
touchasp=${TOUCHASP:-.venv/bin/touchasp}

stage() {  # output folder, then --set pairs on top of the stage-1 recipe
  local out=$1
  shift
  if [[ -d $out/final ]]; then
    echo "$out: done"
    return
  fi
  "$touchasp" train --config training/configs/tiny.yaml --set "model.elastic_k_choices=[4]" \
      --set "output_dir=$out" "$@" --resume
}

stage runs/touchasp-tiny-static
stage runs/touchasp-tiny-static-stage2 --set model.init_from=runs/touchasp-tiny-static/final \
    --set model.task_loss_weight=10 --set optimizer.lr=1.0e-3 --set schedule.warmup_steps=100 --set seed=1
prev=runs/touchasp-tiny-static-stage2/final
# stage:steps:seed:eval interval, as the elastic model's loop in README.md
for spec in 3:7000:2:3500 4:6000:3:3000 5:4000:4:4000 6:6000:5:3000 7:4000:6:4000 8:6000:7:3000 9:6000:8:3000 \
    10:6000:9:3000 11:6000:10:3000; do
  IFS=: read -r n steps seed interval <<< "$spec"
  stage "runs/touchasp-tiny-static-stage$n" --set "model.init_from=$prev" --set model.task_loss_weight=10 \
      --set model.ctc_weight=0.5 --set optimizer.lr=1.0e-3 --set schedule.warmup_steps=100 --set "seed=$seed" \
      --set "max_steps=$steps" --set "eval.interval=$interval"
  prev=runs/touchasp-tiny-static-stage$n/final
done
