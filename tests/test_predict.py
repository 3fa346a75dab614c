"""`agent.predict`: Stable-Baselines3's signature and defaults (sampled actions unless
deterministic=True, (action, state) back), one observation or a batch, training schedules left
alone, and a wrong observation shape refused with both shapes named."""
import inspect

import numpy as np
import pytest
import torch

from agents import AGENTS, BBF, SAC, DrQ, DrQAtari
from agents.base import Agent

PIXELS = (4, 36, 36)
SMALL_ATARI = dict(channels=(8, 16, 16), hidden_dims=(32,))


def test_every_agent_uses_the_shared_predict_with_sb3_defaults():
    for name, (cls, _) in AGENTS.items():
        assert cls.predict is Agent.predict, name
    params = inspect.signature(Agent.predict).parameters
    assert list(params) == ["self", "observation", "state", "episode_start", "deterministic"]
    assert (params["state"].default, params["episode_start"].default,
            params["deterministic"].default) == (None, None, False)


def test_sac_predict_samples_by_default_and_returns_the_state():
    torch.manual_seed(0)
    agent = SAC(5, 2, hidden_dims=(16, 16))
    obs = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    state = object()
    torch.manual_seed(7)
    action, back = agent.predict(obs[0], state=state, episode_start=np.array([True]))
    assert back is state and action.shape == (2,)
    torch.manual_seed(7)
    np.testing.assert_array_equal(action, agent.act(obs[0]))  # sampled, as act(deterministic=False)
    torch.manual_seed(8)
    assert not np.array_equal(agent.predict(obs[0])[0], action)  # another draw, another action
    batch, none = agent.predict(obs, deterministic=True)
    assert none is None and batch.shape == (3, 2)
    np.testing.assert_array_equal(batch, agent.act(obs, deterministic=True))
    np.testing.assert_array_equal(agent.predict(torch.as_tensor(obs), deterministic=True)[0], batch)


@pytest.mark.parametrize("shape", [(4,), (3, 6), (2, 3, 5), ()])
def test_wrong_vector_shape_names_both_shapes(shape):
    agent = SAC(5, 2, hidden_dims=(8,))
    with pytest.raises(ValueError) as err:
        agent.predict(np.zeros(shape, np.float32))
    assert str(err.value) == (f"SAC.predict: an observation of shape {shape}; expected (5,) (one "
                              "observation) or (B, 5) (a batch)")


def test_wrong_pixel_shape_names_both_shapes():
    agent = DrQ((9, 16, 16), 2, hidden_dims=(8,), feature_dim=4)
    assert agent.observation_shape == (9, 16, 16)
    assert agent.predict(np.zeros((2, 9, 16, 16), np.uint8))[0].shape == (2, 2)
    with pytest.raises(ValueError) as err:
        agent.predict(np.zeros((16, 16, 9), np.uint8))  # channels last
    assert str(err.value) == ("DrQ.predict: an observation of shape (16, 16, 9); expected "
                              "(9, 16, 16) (one observation) or (B, 9, 16, 16) (a batch)")


def test_epsilon_greedy_predict_explores_without_advancing_the_schedule():
    torch.manual_seed(0)
    agent = DrQAtari(PIXELS, 3, epsilon_decay_steps=10, epsilon_eval=0.0, **SMALL_ATARI)
    obs = torch.randint(0, 256, (6, *PIXELS), dtype=torch.uint8).numpy()
    torch.manual_seed(3)
    explored = agent.predict(obs)[0]  # epsilon 1.0: uniform actions
    assert agent._act_steps == 0 and agent.epsilon == 1.0
    torch.manual_seed(3)
    np.testing.assert_array_equal(explored, agent.act(obs))  # the same draws as act's
    assert agent._act_steps == 6
    greedy = agent.q_values(torch.as_tensor(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], greedy)
    assert agent._act_steps == 6
    single = agent.predict(obs[0])[0]
    assert isinstance(single, int) and agent._act_steps == 6


def test_bbf_predict_counts_no_step():
    torch.manual_seed(0)
    agent = BBF((4, 84, 84), 6, width_scale=1, hidden_dims=(64,), spr_horizon=3)
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8).numpy()
    assert agent.predict(obs)[0].shape == (2,) and agent._act_steps == 0
    with pytest.raises(ValueError, match=r"expected \(4, 84, 84\)"):
        agent.predict(obs[:, :3])


def test_stable_baselines3_evaluate_policy_runs_our_agents_single_and_vectorized():
    """SB3's own evaluation loop calls `predict` on one env and on a VecEnv of several."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from envs import make_env
    env = make_env("gym:Pendulum-v1", seed=0)
    agent = SAC(env.observation_space.shape[0], env.action_space.shape[0], hidden_dims=(16, 16))
    mean, std = evaluate_policy(agent, env, n_eval_episodes=2, deterministic=True)
    assert -16.3 * 200 <= mean <= 0 and std >= 0  # a Pendulum step rewards -16.27 ... 0
    vec = make_vec_env(lambda: make_env("gym:Pendulum-v1"), n_envs=3, seed=0)
    returns, lengths = evaluate_policy(agent, vec, n_eval_episodes=3, return_episode_rewards=True)
    assert len(returns) == 3 and lengths == [200, 200, 200]
