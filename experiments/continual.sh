#!/usr/bin/env bash
# Continual RL at CPU scale (experiments/continual.md): SAC (states) on Pendulum-v1 whose task
# changes every 3000 env steps (6 tasks, 18k steps): each task permutes the 3 observation
# dimensions and may negate the action (envs/sequence.py; task 0 is the plain env). Replay ratio
# 4, 2x64 MLPs. A trainability probe (200 Adam steps of a critic copy on random targets) runs at
# each switch. The reset-type arms fire at every switch (unit task_switch).
#   cleared: the replay emptied at every switch (old tasks' transitions, whose observations mean
#            other states, cannot interfere), 7 arms x 5 seeds; full reset = a fresh agent per task
#   kept:    the replay kept (the default), none / regen / crelu / full reset x 5 seeds
# 55 runs of ~3.3 min each on one core; ~95 min with 2 jobs on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/continual}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0,1,2,3,4}
COMMON="env=gym/pendulum env.sequence={every:3000,tasks:6,perturb:[permute_obs,negate_actions]}
        train.total_steps=18000 train.learning_starts=1000 train.eval_every=1000 train.eval_episodes=5
        agent.replay_ratio=4 agent.hidden_dims=[64,64] threads=1 train.checkpoint_every=0
        train.progress=false diagnostics.every=2000 diagnostics.probe_steps=200
        hydra.launcher.n_jobs=$JOBS seed=$SEEDS"
AT_SWITCH="++plasticity.unit=task_switch ++plasticity.every=1"
python train.py -m $COMMON ++env.sequence.replay=clear plasticity=none,regen,crelu \
    hydra.sweep.dir=$OUT/cleared/plain
python train.py -m $COMMON ++env.sequence.replay=clear \
    plasticity=full_reset,head_reset,shrink_perturb,hare_tortoise $AT_SWITCH hydra.sweep.dir=$OUT/cleared/at_switch
python train.py -m $COMMON plasticity=none,regen,crelu hydra.sweep.dir=$OUT/kept/plain
python train.py -m $COMMON plasticity=full_reset $AT_SWITCH hydra.sweep.dir=$OUT/kept/at_switch
python -m runner.report $OUT/cleared
python -m runner.report $OUT/kept
