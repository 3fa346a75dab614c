"""One stable-baselines3 SAC run on a plasticrl env, written as a run directory that
`plasticrl-report` reads next to our runs (experiments/parity.md).

    python experiments/parity_sb3.py --env dmc:cheetah-run --action-repeat 4 --steps 25000 \
        --seed 0 --out runs/parity/sb3/cheetah_run/0

The env is ours (envs.make_env: flat float32 observations, actions in [-1, 1], the action repeat
summing rewards), so both libraries see the same MDP. SB3's SAC keeps its defaults (2x256 MLPs,
Adam 3e-4, batch 256, tau 0.005, gamma 0.99, ent_coef "auto" with target entropy -|A|, one
gradient step per env step) but for `learning_starts`, set to ours. Evaluation: deterministic,
`--eval-episodes` episodes every `--eval-every` agent steps and at the end, on an env seeded
seed + 1 (as train.py does)."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml


def evaluate(model, env, episodes: int, seed: int) -> dict:
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}


def main(argv=None) -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from envs import make_env

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", required=True)
    p.add_argument("--action-repeat", type=int, default=1)
    p.add_argument("--steps", type=int, required=True, help="agent steps (after action repeat)")
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=2500)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"agent": {"name": "sb3_sac", "learning_starts": args.learning_starts},
              "env": {"id": args.env, "action_repeat": args.action_repeat},
              "train": {"total_steps": args.steps, "eval_every": args.eval_every,
                        "eval_episodes": args.eval_episodes}, "seed": args.seed}
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    env = make_env(args.env, seed=args.seed, action_repeat=args.action_repeat)
    eval_env = make_env(args.env, seed=args.seed + 1, action_repeat=args.action_repeat)
    history = []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0 and self.num_timesteps < args.steps:
                history.append({"env_steps": self.num_timesteps,
                                **evaluate(self.model, eval_env, args.eval_episodes, 10_000 * len(history))})
            return True

    model = SAC("MlpPolicy", env, learning_starts=args.learning_starts, seed=args.seed, verbose=0,
                device="cpu")
    start = time.time()
    model.learn(args.steps, callback=Evaluate())
    history.append({"env_steps": args.steps,
                    **evaluate(model, eval_env, args.eval_episodes, 10_000 * len(history))})
    wall = time.time() - start
    summary = {"agent": "sb3_sac", "env": args.env, "seed": args.seed, "env_steps": args.steps,
               "updates": args.steps - args.learning_starts, "wall_time_s": wall,
               "final_eval_return": history[-1]["return_mean"], "eval": history,
               "plasticity": "none", "plasticity_events": []}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{args.env} seed {args.seed}: final eval {summary['final_eval_return']:.1f} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
