#!/usr/bin/env bash
# Offline pre-training -> online fine-tuning vs a 100% reset at the switch (experiments/offline_to_online.md).
# Pendulum-v1; dataset: 15 episodes of a trained SAC agent with Gaussian (0.3) and epsilon (0.2) noise.
# IQL and SAC, each pre-trained for 2000 updates on the dataset, then 3000 online env steps with 50/50
# batches; warm start (plasticity=none) vs full reset at the switch (8 runs, ~15 min on 2 CPU cores);
# then RLPD from scratch with the same data (3 runs, ~75 min).
set -euo pipefail
cd "$(dirname "$0")/.."
AGENT=${1:?usage: $0 <trained agent.pt> [out dir]}
OUT=${2:-runs/offline_online}
python -m runner.collect --env gym:Pendulum-v1 --agent "$AGENT" --noise-std 0.3 --epsilon 0.2 \
    --episodes 15 --dataset-id pendulum/medium-v0 --root data/minari --no-progress
python train.py -m agent=iql,sac ++plasticity.unit=switch plasticity=none,full_reset seed=0,1 \
  offline.dataset=data/minari/pendulum/medium-v0 offline.pretrain_updates=2000 offline.fraction=0.5 \
  train.total_steps=3000 train.learning_starts=200 train.eval_every=500 train.progress=false \
  threads=1 hydra.sweep.dir=$OUT
# RLPD at its own settings (10 LayerNorm critics, 20 updates per env step, no pre-training): ~50 min a run
python train.py -m agent=rlpd plasticity=none seed=0,1,2 \
  offline.dataset=data/minari/pendulum/medium-v0 offline.fraction=0.5 \
  train.total_steps=3000 train.learning_starts=200 train.eval_every=500 train.progress=false \
  threads=1 hydra.sweep.dir=$OUT/rlpd
python -m runner.report $OUT
