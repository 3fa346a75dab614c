"""Atari-100k protocol of BBF's / Dopamine's reference code (google-research
bigger_better_faster/bbf/eval_run_experiment.py, google/dopamine dopamine/labs/atari_100k/):
0..29 no-op agent steps at a new game, zero-padded stacks at a game start and at every life loss
(training: terminal + continued game; evaluation: same frames, the episode goes on), and replayed
stacks equal to the acting stacks with zero padding."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")

from envs.atari import make_atari  # noqa: E402
from replay import FrameStorage  # noqa: E402


def zero_padded(obs: np.ndarray, frame: np.ndarray) -> bool:
    """obs == [0, ..., 0, frame]."""
    return not obs[:-1].any() and np.array_equal(obs[-1], frame) and frame.any()


# ------------------------------------------------------------------ no-op starts
def test_noop_count_is_0_to_29_and_each_noop_is_4_frames():
    env = make_atari("Pong", seed=1, max_episode_steps=1)  # Pong has no lives: no restarts
    counts = []
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        assert info["episode_frame_number"] == 4 * info["noops"] and not info["continued"]
        assert zero_padded(obs, obs[-1])
        counts.append(info["noops"])
        assert env.step(0)[3]  # a 1-step cap: the next reset is a new game
    assert set(counts) == set(range(30))  # min 0, max 29: randint(0, 30), exclusive max
    assert make_atari("Pong", noop_max=1).reset(seed=0)[1]["noops"] == 0  # bound is exclusive
    assert make_atari("Pong", noop_max=0).reset(seed=0)[1]["episode_frame_number"] == 0


def test_noops_are_pooled_noop_agent_steps():
    """The start frame after n no-ops is the frame of n NOOP agent steps (skip 4, max-pool)."""
    env = make_atari("Pong", seed=0, training=False)
    obs, info = env.reset(seed=3)
    n = info["noops"]
    assert n >= 2
    plain = make_atari("Pong", seed=0, training=False, noop_max=0)
    plain.reset(seed=0)
    for _ in range(n):
        frame = plain.step(0)[0][-1]
    assert np.array_equal(obs[-1], frame)
    assert env.step(0)[4]["episode_frame_number"] == 4 * n + 4  # no-ops are not agent steps
    assert env.unwrapped._steps == 1


def test_noop_step_that_ends_a_life_restarts_the_game(monkeypatch):
    """BBF _initialize_episode: ``if terminal: env.reset()`` and the no-op loop goes on."""
    env = make_atari("Pong", seed=0)
    real, calls = env._repeat, []

    def third_noop_loses_a_life(action):
        calls.append(action)
        reward, game_over, life_lost = real(action)
        return reward, game_over, life_lost or len(calls) == 3

    monkeypatch.setattr(env, "_repeat", third_noop_loses_a_life)
    _, info = env.reset(seed=3)
    assert info["noops"] >= 4 and len(calls) == info["noops"]
    assert info["episode_frame_number"] == 4 * (info["noops"] - 3)  # restarted after no-op 3


# ------------------------------------------------------------------ zero-padded stacks
def test_training_life_loss_restarts_a_zero_padded_stack():
    env = make_atari("Breakout", seed=0, training=True)
    obs, _ = env.reset(seed=0)
    assert zero_padded(obs, obs[-1])
    rng, losses = np.random.default_rng(0), 0
    while True:
        prev = obs
        obs, _, terminated, _, info = env.step(int(rng.integers(4)))
        assert np.array_equal(obs[:-1], prev[1:])  # the terminal step's obs is the plain shift
        if info["game_over"]:
            break
        assert terminated == info["life_lost"]
        if terminated:
            losses += 1
            last = obs[-1].copy()
            obs, reset_info = env.reset()
            assert reset_info["continued"] and reset_info["noops"] == 0
            assert zero_padded(obs, last)  # [0, 0, 0, o], o the life-loss step's frame
    assert losses == 4


def test_eval_life_loss_zeroes_the_stack_and_equals_training_frames():
    """Same actions in a training and an evaluation env: identical stacks every step (training's
    after its reset at a life loss), the evaluation episode runs to game over, whole-game return."""
    train, ev = make_atari("Breakout", seed=0), make_atari("Breakout", seed=0, training=False)
    obs_t, obs_e = train.reset(seed=0)[0], ev.reset(seed=0)[0]
    assert np.array_equal(obs_t, obs_e)
    rng, losses, steps, raw_return, eval_return = np.random.default_rng(0), 0, 0, 0.0, 0.0
    while True:
        action = int(rng.integers(4))
        obs_t, _, term_t, _, info_t = train.step(action)
        obs_e, reward_e, term_e, trunc_e, info_e = ev.step(action)
        steps, raw_return, eval_return = steps + 1, raw_return + info_t["raw_reward"], \
            eval_return + reward_e
        assert info_e["life_lost"] == info_t["life_lost"] and info_e["lives"] == info_t["lives"]
        if info_e["game_over"]:
            break
        assert not term_e and not trunc_e
        if info_e["life_lost"]:
            losses += 1
            assert term_t and zero_padded(obs_e, obs_t[-1])
            obs_t = train.reset()[0]
        assert np.array_equal(obs_t, obs_e), steps
    assert term_e and losses == 4 and info_e["lives"] == 0
    assert eval_return == raw_return > 0  # the game's score, over all 5 lives


# ------------------------------------------------------------------ replay
def test_replayed_stacks_are_zero_padded_and_equal_the_acting_stacks():
    env = make_atari("Breakout", seed=0)
    storage = FrameStorage(1000, (1, 84, 84), 4, padding="zero")
    rng, history = np.random.default_rng(1), []
    obs, _ = env.reset(seed=0)
    for _ in range(400):  # over a game over: 2 games, 8+ life losses
        action = int(rng.integers(4))
        next_obs, _, terminated, truncated, _ = env.step(action)
        storage.add(obs, action, 0.0, next_obs, terminated, truncated)
        history.append((obs, next_obs))
        obs = env.reset()[0] if terminated or truncated else next_obs
    idx = storage.valid.nonzero().squeeze(1)  # no wrap-around: slot order is stream order
    assert len(idx) == len(history)
    replayed, replayed_next = storage.gather("obs", idx).numpy(), storage.gather("next_obs", idx)
    assert np.array_equal(replayed, np.stack([h[0] for h in history]))
    assert np.array_equal(replayed_next.numpy(), np.stack([h[1] for h in history]))
    starts = [i for i, (o, _) in enumerate(history) if not o[:-1].any()]
    assert len(starts) >= 9 and all(zero_padded(replayed[i], replayed[i][-1]) for i in starts)
    with pytest.raises(ValueError, match="padding='zero'"):  # DMC's repeat default rejects them
        FrameStorage(10, (1, 84, 84), 4).add(history[0][0], 0, 0.0, history[0][1], False, False)
