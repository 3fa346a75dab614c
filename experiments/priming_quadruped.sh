#!/usr/bin/env bash
# Heavy priming at CPU scale on the task of the primacy paper (experiments/priming_quadruped.md):
# SAC (states, 2x256, replay ratio 1) on dmc:quadruped-run for 40k env steps, 100 random steps
# first. "SAC w/ HP" (Nikishin et al. 2022, Sec. 3: 1e5 updates on the first 100 transitions)
# shortened to 20k updates on the first 100 transitions (train.priming_updates). Arms x 5 seeds:
#   base:   no priming, no reset
#   primed: heavy priming, no reset
#   reset:  heavy priming, full resets (actor, critic, temperature, optimizer) at 10k and 20k steps
# 15 runs of ~5-8 min on one core each (compiled update, ~140 updates/s); ~55 min with 2 jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/priming_quadruped}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0,1,2,3,4}
COMMON="env=dmc/quadruped_run train.total_steps=40000 train.learning_starts=100
        train.eval_every=5000 train.eval_episodes=5 train.checkpoint_every=0 train.progress=false
        agent.compile=compile threads=1 hydra.launcher.n_jobs=$JOBS seed=$SEEDS"
python train.py -m $COMMON train.priming_updates=0 plasticity=none hydra.sweep.dir=$OUT/base
python train.py -m $COMMON train.priming_updates=20000 plasticity=none hydra.sweep.dir=$OUT/primed
python train.py -m $COMMON train.priming_updates=20000 plasticity=full_reset \
    ++plasticity.every=10000 ++plasticity.stop_after=20000 hydra.sweep.dir=$OUT/reset
python -m runner.report $OUT            # the final evaluation
python -m runner.report $OUT --last 3 --out $OUT/last3   # mean of the last 3 evaluations (30k-40k)
