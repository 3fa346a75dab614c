"""Atari env steps per second: envs.atari vs gymnasium's wrappers vs ale_py.AtariVectorEnv.

All three do the same preprocessing (frame skip 4 + max-pool, 84x84 grayscale, stack 4, no-op
starts, random actions, auto reset); envs.atari also does the training-only life-loss terminal
and reward clipping (``--eval`` turns them off). The implementations are alternated over rounds
because shared machines are noisy; the median and best round are reported.
    python bench/atari_env_speed.py [--game Pong] [--steps 3000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import ale_py
import gymnasium
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable without installing
from envs.atari import make_atari  # noqa: E402
from envs.atari_games import check_game, rom_name  # noqa: E402


def _loop(env, actions, vector: bool = False) -> float:
    start = time.perf_counter()
    for a in actions:
        if vector:  # autoresets by itself
            env.step(a)
            continue
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="Pong")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--eval", action="store_true", help="envs.atari with training=False")
    args = parser.parse_args()
    game = check_game(args.game)
    gymnasium.register_envs(ale_py)

    ours = make_atari(game, seed=0, training=not args.eval)
    ours.reset(seed=0)
    wrapped = FrameStackObservation(
        AtariPreprocessing(gymnasium.make(f"ALE/{game}-v5", frameskip=1,
                                          repeat_action_probability=0.0), noop_max=30),
        4, padding_type="reset")
    wrapped.reset(seed=0)
    vec = {n: ale_py.AtariVectorEnv(rom_name(game), 1, num_threads=n, use_fire_reset=False,
                                    reward_clipping=False) for n in (1, 2)}
    for v in vec.values():
        v.reset(seed=0)
    rng = np.random.default_rng(0)
    n_actions = ours.action_space.n
    runs = {"envs.atari": lambda a: _loop(ours, a),
            "gymnasium AtariPreprocessing+FrameStack": lambda a: _loop(wrapped, a),
            "ale_py.AtariVectorEnv(1 env, 1 thread)": lambda a: _loop(vec[1], a[:, None], True),
            "ale_py.AtariVectorEnv(1 env, 2 threads)": lambda a: _loop(vec[2], a[:, None], True)}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            rates[name].append(run(rng.integers(0, n_actions, args.steps)))
    print(f"{game}: agent steps/s over {args.rounds} rounds of {args.steps} steps")
    for name, values in rates.items():
        print(f"  {name:42s} median {statistics.median(values):6.0f}  best {max(values):6.0f}")


if __name__ == "__main__":
    main()
