#!/usr/bin/env bash
# Learning parity with stable-baselines3 (experiments/parity.md): SAC from states on DMC with the
# PlaNet protocol (100k env steps, PlaNet's action repeat per task, 1 update per agent step,
# 1000 random agent steps first), 5 seeds x 4 tasks, ours (train.py, agent=sac defaults) and
# SB3's SAC (experiments/parity_sb3.py, its defaults) on the same env. One core per stream:
# ours and SB3 run side by side. Then one report over both.
#   bash experiments/parity.sh [OUT] [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/parity}
mkdir -p "$OUT"
SEEDS=${2:-0,1,2,3,4}
# task  env id  action repeat (PlaNet: cartpole 8, cheetah / ball_in_cup / reacher 4)
# (TASKS="reacher_easy:dmc:reacher-easy:4" bash experiments/parity.sh ... runs a subset)
TASKS=${TASKS:-"ball_in_cup_catch:dmc:ball_in_cup-catch:4 cartpole_swingup:dmc:cartpole-swingup:8
       reacher_easy:dmc:reacher-easy:4 cheetah_run:dmc:cheetah-run:4"}
ours() {
  for t in $TASKS; do
    IFS=: read -r name kind id repeat <<< "$t"
    python train.py -m agent=sac env=dmc/cheetah_run env.name="$name" env.id="$kind:$id" \
      env.action_repeat="$repeat" train.total_steps=$((100000 / repeat)) train.learning_starts=1000 \
      train.eval_every=2500 train.eval_episodes=10 train.checkpoint_every=0 train.progress=false \
      diagnostics.every=0 threads=1 hydra.launcher.n_jobs=1 seed="$SEEDS" \
      hydra.sweep.dir="$OUT/ours/$name"
  done
}
sb3() {
  for t in $TASKS; do
    IFS=: read -r name kind id repeat <<< "$t"
    for seed in ${SEEDS//,/ }; do
      python experiments/parity_sb3.py --env "$kind:$id" --action-repeat "$repeat" \
        --steps $((100000 / repeat)) --learning-starts 1000 --eval-every 2500 --eval-episodes 10 \
        --seed "$seed" --out "$OUT/sb3/$name/$seed"
    done
  done
}
ours > "$OUT.ours.log" 2>&1 &
sb3 > "$OUT.sb3.log" 2>&1
wait
python -m runner.report "$OUT"
