#!/usr/bin/env bash
# Primacy bias on a cheap task (experiments/primacy.md): SAC on Pendulum-v1, 12k env steps,
# with and without heavy priming (25k updates on the first 1000 random transitions), with and
# without full resets at env steps 4000 and 8000. 12 runs, ~1.5 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/primacy}
COMMON="train.total_steps=12000 train.eval_every=1000 train.learning_starts=1000 train.progress=false
        ++plasticity.every=4000 ++plasticity.stop_after=8000 seed=0,1,2"
python train.py -m $COMMON train.priming_updates=0 plasticity=none hydra.sweep.dir=$OUT/base
python train.py -m $COMMON train.priming_updates=25000 plasticity=none,full_reset hydra.sweep.dir=$OUT/primed
python train.py -m $COMMON train.priming_updates=0 plasticity=full_reset hydra.sweep.dir=$OUT/unprimed_reset
python -m runner.report $OUT
