"""Atari-100k envs: the protocol's preprocessing, training-only parts, seeding, game names."""
from __future__ import annotations

import cv2
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

ale_py = pytest.importorskip("ale_py")

from envs import atari_games  # noqa: E402
from envs.atari import make_atari  # noqa: E402
from envs.atari_games import GAMES, check_game, human_normalized, rom_name  # noqa: E402
from envs.registry import EnvIdError, check_env_id, make_env  # noqa: E402


def _resize(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (84, 84), interpolation=cv2.INTER_AREA)


def _play(env, steps: int, seed: int = 0, reset_seed: int = 0):
    """Random actions with auto reset; yields (obs, reward, terminated, truncated, info)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=reset_seed)
    for _ in range(steps):
        out = env.step(int(rng.integers(env.action_space.n)))
        yield out
        if out[2] or out[3]:
            env.reset()


# ------------------------------------------------------------------ games and scores
def test_games_and_human_normalized():
    assert len(GAMES) == 26 and len(set(GAMES)) == 26
    for game in GAMES:
        assert ale_py.roms.get_rom_path(rom_name(game)) is not None, game
        ref = atari_games.SCORES[game]
        assert ref.human > ref.random
        assert human_normalized(game, ref.random) == 0.0
        assert human_normalized(game, ref.human) == 1.0
    assert atari_games.SCORES["Pong"] == (-20.7, 14.6)
    assert human_normalized("Pong", 14.6) == 1 and human_normalized("Pong", -20.7) == 0
    assert human_normalized("Breakout", 1.7 + 2 * 28.8) == pytest.approx(2.0)


def test_check_game_names_and_errors():
    assert check_game("Pong") == "Pong"
    assert check_game("ms_pacman") == "MsPacman" and check_game("upndown") == "UpNDown"
    assert check_env_id("atari:Pong") == ("atari", "Pong", None)
    with pytest.raises(EnvIdError, match="close matches: Pong.*valid games: Alien") as err:
        check_env_id("atari:Pongg")
    assert "atari:Pongg" in str(err.value) and "UpNDown" in str(err.value)
    with pytest.raises(EnvIdError, match="unknown Atari-100k game 'Zork'"):
        check_game("Zork")


# ------------------------------------------------------------------ preprocessing
def test_spaces_padding_and_newest_last():
    env = make_env("atari:Breakout", seed=0)
    assert env.observation_space == gymnasium.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert env.action_space == gymnasium.spaces.Discrete(4)  # minimal set
    assert env.get_action_meanings() == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and obs[-1].any()
    # zero-padded, as BBF/Dopamine's acting stack (was repeat-padded before the reference check)
    assert not obs[:-1].any()
    frame = env.render()
    assert frame.shape == (210, 160, 3) and frame.dtype == np.uint8
    prev = obs
    for t in range(6):
        obs = env.step(1)[0]
        assert np.array_equal(obs[:-1], prev[1:])  # shifts left: the newest frame is last
        if t == 0:
            assert not obs[:2].any() and np.array_equal(obs[2], prev[-1])
        prev = obs


def test_max_pool_of_last_two_frames_matches_raw_ale():
    env = make_atari("Breakout", seed=0, training=False)
    env.reset(seed=0)
    rng, pooled_differs = np.random.default_rng(0), 0
    for _ in range(60):
        action = int(rng.integers(env.action_space.n))
        state = env.ale.cloneState()
        obs, _, terminated, _, info = env.step(action)
        if info["life_lost"]:  # the step stops early (AtariPreprocessing, also in evaluation)
            continue
        after = env.ale.cloneState()
        env.ale.restoreState(state)  # replay the same 4 frames on the raw ALE
        frames = []
        for _ in range(4):
            env.ale.act(env.unwrapped._actions[action])
            frames.append(env.ale.getScreenGrayscale())
        env.ale.restoreState(after)
        expected = _resize(np.maximum(frames[2], frames[3]))
        assert np.array_equal(obs[-1], expected)
        pooled_differs += not np.array_equal(expected, _resize(frames[3]))
        assert not terminated
    assert pooled_differs > 0  # the pooling is not a no-op on these frames


def test_frames_equal_gymnasium_atari_preprocessing():
    """Same frames and rewards as gymnasium's AtariPreprocessing (no no-ops, eval) until the
    terminal step, where it returns the previous frame and this env the real last frames."""
    gymnasium.register_envs(ale_py)
    ref = gymnasium.wrappers.AtariPreprocessing(
        gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0), noop_max=0)
    env = make_atari("Pong", seed=0, training=False, noop_max=0)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs[-1], ref.reset(seed=0)[0])
    rng = np.random.default_rng(1)
    for _ in range(150):
        action = int(rng.integers(env.action_space.n))
        obs, reward, *_ = env.step(action)
        ref_obs, ref_reward, *_ = ref.step(action)
        assert np.array_equal(obs[-1], ref_obs) and reward == ref_reward


def test_noop_starts_within_bounds():
    """0..29 NOOP agent steps of 4 frames (BBF/Dopamine runner); was 1..30 raw frames before.
    The exact coverage is in tests/test_atari_protocol.py."""
    env = make_atari("Pong", seed=1, max_episode_steps=1)
    counts = []
    for i in range(40):
        _, info = env.reset(seed=i if i % 2 else None)
        assert 0 <= info["noops"] <= 29 and not info["continued"]
        assert info["episode_frame_number"] == 4 * info["noops"]  # one NOOP agent step each
        counts.append(info["noops"])
        assert env.step(0)[3]  # a 1-step cap: truncated, so the next reset is a new game
    assert len(set(counts)) > 5
    assert make_atari("Pong", noop_max=0).reset(seed=0)[1]["episode_frame_number"] == 0


def test_seeding_reproducible():
    runs = []
    for _ in range(2):
        env = make_atari("Pong", seed=7)
        obs = [env.reset(seed=11)[0]]
        rewards = []
        for out in _play(env, 200, seed=5, reset_seed=11):
            obs.append(out[0])
            rewards.append(out[1])
        runs.append((np.stack(obs), rewards))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    noops = {make_atari("Pong").reset(seed=s)[1]["noops"] for s in range(8)}
    assert len(noops) > 1  # the seed picks the no-op start


# ------------------------------------------------------------------ training-only parts
def test_life_loss_terminal_only_in_training_and_game_continues():
    env = make_atari("Breakout", seed=0, training=True)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    assert info["lives"] == 5
    life_losses, frame_number = 0, info["episode_frame_number"]
    while True:
        obs, _, terminated, truncated, info = env.step(int(rng.integers(4)))
        assert info["episode_frame_number"] > frame_number
        frame_number = info["episode_frame_number"]
        if not terminated:
            continue
        if info["game_over"]:
            break
        life_losses += 1
        assert info["lives"] == 5 - life_losses and not truncated
        with pytest.raises(RuntimeError, match="reset"):
            env.step(0)
        new_obs, reset_info = env.reset(seed=123)  # continues: same game, stack restarts
        assert reset_info["continued"] and reset_info["lives"] == info["lives"]
        assert reset_info["episode_frame_number"] == frame_number
        # zero-padded [0, 0, 0, o] (BBF's reset_one), was repeat-padded [o, o, o, o] before
        assert not new_obs[:3].any() and np.array_equal(new_obs[3], obs[-1])
    assert life_losses == 4 and info["lives"] == 0
    _, info = env.reset(seed=1)  # a game over: a real new game
    assert not info["continued"] and info["lives"] == 5
    assert info["episode_frame_number"] == 4 * info["noops"]

    ev = make_atari("Breakout", seed=0, training=False)
    _, info = ev.reset(seed=0)
    lives_seen = {info["lives"]}
    for _, _, terminated, truncated, info in _play(ev, 3000):
        lives_seen.add(info["lives"])
        if terminated:
            break
    assert info["game_over"] and lives_seen == {0, 1, 2, 3, 4, 5}


def test_rewards_clipped_only_in_training():
    for training in (True, False):
        env = make_atari("MsPacman", seed=0, training=training)
        raw = []
        for _, reward, _, _, info in _play(env, 300):
            raw.append(info["raw_reward"])
            expected = np.clip(info["raw_reward"], -1, 1) if training else info["raw_reward"]
            assert reward == expected
        assert max(raw) > 1  # MsPacman pellets give 10


def test_episode_cap_truncates_and_starts_a_new_game():
    env = make_atari("Pong", seed=0, max_episode_steps=50)
    env.reset(seed=0)
    for t in range(50):
        _, _, terminated, truncated, info = env.step(0)
        assert truncated == (t == 49) and not terminated
    assert info["game_over"]  # the cap ends the game: the next reset starts a new one
    _, info = env.reset()
    assert not info["continued"] and info["episode_frame_number"] == 4 * info["noops"]
    assert make_atari("Pong").max_episode_steps == 27_000


def test_make_env_atari_options():
    with pytest.raises(ValueError, match="frame skip"):
        make_env("atari:Pong", action_repeat=2)
    env = make_env("atari:pong", training=False, frame_stack=2)
    assert env.observation_space.shape == (2, 84, 84) and not env.training and env.game == "Pong"


@pytest.mark.filterwarnings("ignore:.*not having a spec:UserWarning")
def test_pong_smoke_run():
    env = make_env("atari:Pong", seed=0)
    episode_rewards, steps = [], 0
    for obs, reward, terminated, truncated, info in _play(env, 400):
        assert obs.shape == (4, 84, 84) and reward in (-1.0, 0.0, 1.0)
        episode_rewards.append(reward)
        steps += 1
    assert steps == 400 and -1.0 in episode_rewards  # a random Pong player loses points
    for training in (True, False):  # gymnasium's API checks (spaces, seeding, render)
        check_env(make_atari("Pong", seed=0, training=training), skip_render_check=False)
