"""Every agent config and preset against the reference code it follows (one comment per value
citing repository, file and the commit read), the initialisers, and which parameters each preset
touches on each agent (the README's agent x preset table)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents import make_agent
from agents.encoders import conv_trunk
from agents.init import Conv2d, Linear
from agents.networks import EnsembleLinear, TanhGaussianActor
from plasticity.groups import GroupError, resolve_group
from plasticity.scheduler import build_scheduler
from tests.conftest import make_config

RESETS = "evgenii-nikishin/rl_with_resets@502ec52"
DRQ = "denisyarats/drq@dd040f1"
RLPD = "ikostrikov/rlpd@c90fd4b"
IQL = "ikostrikov/implicit_q_learning@09d7002"
BBF = "google-research/google-research bigger_better_faster@4c42994"


def agent_cfg(*overrides):
    return make_config(*overrides)["agent"]


def test_sac_follows_rl_with_resets():
    a = agent_cfg("agent=sac")
    assert a["lr"] == 3e-4                       # RESETS configs/sac.py actor_lr, critic_lr, temp_lr
    assert a["batch_size"] == 256                # RESETS train_dense.py flag batch_size
    assert a["buffer_size"] == 1_000_000         # RESETS configs/sac.py replay_buffer_size
    assert a["gamma"] == 0.99 and a["tau"] == 0.005   # RESETS configs/sac.py discount, tau
    assert a["hidden_dims"] == [256, 256]        # RESETS configs/sac.py hidden_dims
    assert a["num_critics"] == 2                 # RESETS networks/critic_net.py DoubleCritic
    assert a["init_temperature"] == 1.0          # RESETS configs/sac.py init_temperature
    assert a["target_entropy"] is None and a["target_entropy_per_action"] == -0.5  # RESETS sac_learner.py -action_dim / 2
    assert a["init"] == "orthogonal"             # RESETS networks/common.py default_init = orthogonal(sqrt 2)
    assert a["log_std_bounds"] == [-10.0, 2.0]   # RESETS networks/policies.py LOG_STD_MIN / LOG_STD_MAX
    assert a["log_std_form"] == "tanh"           # RESETS policies.py: tanh rescale (the clip is commented out)
    assert a["actor_q"] == "min" and a["backup_entropy"] is True  # RESETS agents/sac/actor.py, critic.py
    assert a["actor_update_every"] == 1 and a["target_update_every"] == 1  # RESETS configs/sac.py target_update_period
    assert a["update_order"] == "critic_first"   # RESETS continuous_control/agents/sac/sac_learner.py _update_jit: critic, target, then actor on the new critic
    assert a["network"] == "mlp" and a["normalize_observations"] is False  # RESETS networks/: plain MLPs, raw observations
    assert a["weight_decay"] == 0.0 and a["injection"] is False  # RESETS sac_learner.py optax.adam (no decay); no spare heads
    assert a["replay_ratio"] == 1                # RESETS train_dense.py updates_per_step default
    assert a["layer_norm"] is False and a["actor_layer_norm"] is False  # RESETS common.py MLP has none


SIMBA = "SonyResearch/simba@4e83770"


def test_simba_follows_sonyresearch_simba():
    a = agent_cfg("agent=simba")
    assert a["network"] == "simba" and a["normalize_observations"] is True  # SIMBA configs/agent/sac_simba.yaml
    assert (a["critic_hidden_dim"], a["critic_num_blocks"]) == (512, 2)   # SIMBA sac_simba.yaml critic_*
    assert (a["actor_hidden_dim"], a["actor_num_blocks"]) == (128, 1)     # SIMBA sac_simba.yaml actor_*
    assert a["num_critics"] == 1                 # SIMBA sac_simba.yaml critic_use_cdq = env.episodic (DMC: false)
    assert a["lr"] == 1e-4 and a["weight_decay"] == 1e-2  # SIMBA sac_simba.yaml *_learning_rate, *_weight_decay
    assert a["init_temperature"] == 0.01         # SIMBA sac_simba.yaml temp_initial_value
    assert a["target_entropy_per_action"] == -0.5  # SIMBA sac_simba.yaml temp_target_entropy_coef
    assert a["tau"] == 0.005 and a["n_step"] == 1  # SIMBA sac_simba.yaml target_tau; base.yaml n_step
    assert a["replay_ratio"] == 2                # SIMBA configs/base.yaml updates_per_interaction_step
    assert a["batch_size"] == 256                # SIMBA configs/buffer/numpy_uniform.yaml sample_batch_size
    assert a["gamma"] == 0.99                    # SIMBA base.yaml heuristic, 1000 steps / action repeat 2
    assert a["update_order"] == "actor_first"    # SIMBA scale_rl/agents/sac/sac_agent.py _update_sac_networks
    assert a["log_std_bounds"] == [-10.0, 2.0] and a["log_std_form"] == "tanh"  # SIMBA networks/policies.py


def test_rlpd_follows_ikostrikov_rlpd():
    a = agent_cfg("agent=rlpd")
    assert a["num_critics"] == 10 and a["num_target_critics"] == 2  # RLPD configs/rlpd_config.py num_qs, num_min_qs
    assert a["layer_norm"] is True               # RLPD rlpd_config.py critic_layer_norm
    assert a["actor_layer_norm"] is False        # RLPD sac_learner.py: actor MLP without use_layer_norm
    assert a["replay_ratio"] == 20 and a["actor_update_every"] == 20  # RLPD README --utd_ratio=20; one actor step per update()
    assert a["actor_q"] == "mean"                # RLPD sac_learner.py update_actor qs.mean(axis=0)
    assert a["init"] == "xavier"                 # RLPD rlpd/networks/mlp.py default_init = xavier_uniform
    assert a["target_entropy_per_action"] == -0.5   # RLPD sac_learner.py -action_dim / 2
    assert a["log_std_bounds"] == [-20.0, 2.0] and a["log_std_form"] == "clip"  # RLPD distributions/tanh_normal.py
    assert a["init_temperature"] == 1.0 and a["lr"] == 3e-4 and a["batch_size"] == 256  # RLPD sac_config.py, td_config.py


def test_drq_follows_nikishin_drq():
    a = agent_cfg("agent=drq")
    assert a["channels"] == [32, 64, 128, 256]   # RESETS configs/drq.py cnn_features
    assert a["strides"] == [2, 2, 2, 2]          # RESETS configs/drq.py cnn_strides
    assert a["conv_padding"] == "same"           # RESETS configs/drq.py cnn_padding 'SAME'
    assert a["image_size"] == 64 and a["grayscale"] is True  # RESETS configs/drq.py image_size, gray_scale
    assert a["feature_dim"] == 50                # RESETS configs/drq.py latent_dim
    assert a["batch_size"] == 512                # RESETS train_pixels.py flag batch_size
    assert a["buffer_size"] == 100_000           # RESETS configs/drq.py replay_buffer_size
    assert a["lr"] == 3e-4 and a["tau"] == 0.005 and a["hidden_dims"] == [256, 256]  # RESETS configs/drq.py
    assert a["init_temperature"] == 0.1          # RESETS configs/drq.py init_temperature
    assert a["target_entropy_per_action"] == -1.0  # RESETS agents/drq/drq_learner.py -action_dim
    assert a["q_views"] == 1 and a["target_views"] == 1  # RESETS drq_learner.py: one batched_random_crop each
    assert a["augment_pad"] == 4                 # RESETS agents/drq/augmentations.py padding=4
    assert a["init"] == "orthogonal" and a["log_std_form"] == "tanh"  # RESETS drq/networks.py, networks/policies.py
    env = make_config("agent=drq", "env=dmc_pixels/walker_walk")["env"]
    assert env["image_size"] == 64 and env["grayscale"] is True and env["frame_stack"] == 3  # RESETS train_pixels.py
    assert env["action_repeat"] == 2             # RESETS train_pixels.py PLANET_ACTION_REPEAT, else 2
    env = make_config("agent=drq", "env=dmc_pixels/cartpole_swingup")["env"]
    assert env["action_repeat"] == 8             # RESETS train_pixels.py PLANET_ACTION_REPEAT cartpole-swingup


def test_drq_kostrikov_follows_denisyarats_drq():
    a = agent_cfg("agent=drq_kostrikov")
    assert a["hidden_dims"] == [1024, 1024]      # DRQ config.yaml hidden_dim 1024, hidden_depth 2
    assert a["lr"] == 1e-3 and a["tau"] == 0.01  # DRQ config.yaml lr, critic_tau
    assert a["actor_update_every"] == 2 and a["target_update_every"] == 2  # DRQ config.yaml *_update_frequency
    assert a["q_views"] == 2 and a["target_views"] == 2   # DRQ drq.py obs_aug, next_obs_aug (K = M = 2)
    assert a["channels"] == [32, 32, 32, 32] and a["strides"] == [2, 1, 1, 1]  # DRQ drq.py Encoder
    assert a["conv_padding"] == "valid"          # DRQ drq.py: 84 -> 35 (num_filters * 35 * 35)
    assert a["feature_dim"] == 50 and a["init_temperature"] == 0.1  # DRQ config.yaml feature_dim, init_temperature
    assert a["batch_size"] == 512                # DRQ config.yaml: "use a batch size of 512 to reproduce the paper"
    assert a["image_size"] == 84 and a["grayscale"] is False  # DRQ config.yaml image_size; RGB frames
    assert a["init"] == "drq" and a["log_std_bounds"] == [-10.0, 2.0]  # DRQ utils.py weight_init; config.yaml log_std_bounds
    assert a["target_entropy_per_action"] == -1.0  # DRQ drq.py target_entropy = -action_shape[0]


def test_iql_follows_implicit_q_learning():
    a = agent_cfg("agent=iql")
    assert a["expectile"] == 0.9 and a["temperature"] == 10.0  # IQL configs/antmaze_config.py
    assert a["max_weight"] == 100.0              # IQL actor.py jnp.minimum(exp_a, 100.0)
    assert a["init"] == "orthogonal"             # IQL common.py default_init
    assert a["hidden_dims"] == [256, 256] and a["lr"] == 3e-4 and a["batch_size"] == 256  # IQL configs, train_offline.py


def test_bbf_config_follows_bbf_gin():
    cfg = make_config("agent=bbf", "env=atari/pong")
    assert cfg["train"]["learning_starts"] == 2000   # BBF configs/BBF.gin JaxDQNAgent.min_replay_history
    assert make_config("agent=drq_atari", "env=atari/pong")["train"]["learning_starts"] == 1600  # dopamine DrQ_eps.gin
    p = make_config("agent=bbf", "env=atari/pong", "plasticity=bbf")["plasticity"]
    assert p["unit"] == "env_steps" and p["every"] == 20_000   # BBF BBF.gin reset_every (agent steps)
    assert p["horizon"] == 100_000                   # BBF BBF.gin no_resets_after
    assert p["shrink"] == 0.5 and p["perturb"] == 0.5  # BBF BBF.gin shrink_factor, perturb_factor


@pytest.mark.parametrize("task, total, expected", [
    ("cartpole_swingup", 62_500, [25_000, 50_000]),          # 500k env steps at repeat 8: 2 resets
    ("walker_walk", 250_000, [25_000 * k for k in range(1, 11)]),  # 500k at repeat 2: 10 resets
])
def test_nikishin_drq_reset_steps(task, total, expected):
    """rl_with_resets train_pixels.py reset_interval: 25k agent steps in its 500k-env-step runs.
    Its walker reset at the last step (250k) comes after that step's evaluation (the loop
    evaluates, then resets) and changes no reported number; with the run's budget our
    no_reset_within skips it, so that agent.pt is the evaluated agent."""
    cfg = make_config("agent=drq", f"env=dmc_pixels/{task}", "plasticity=reset_but_encoder")
    assert cfg["train"]["total_steps"] == total and cfg["plasticity"]["every"] == 25_000
    agent = make_agent(dict(cfg["agent"], channels=[4], strides=[2], hidden_dims=[8]),
                       spaces.Box(0, 255, (3, 16, 16), np.uint8), spaces.Box(-1, 1, (1,)))
    scheduler = build_scheduler(agent, cfg["plasticity"]["rules"])
    fired = [s for s in range(1, total + 1) if scheduler.after_env_step(s, updates=s)]
    assert fired == expected  # the reference's schedule
    scheduler = build_scheduler(agent, cfg["plasticity"]["rules"], budgets={"env_steps": total})
    fired = [s for s in range(1, total + 1) if scheduler.after_env_step(s, updates=s)]
    assert fired == [s for s in expected if s < total]


def test_nikishin_encoder_matches_the_reference_parameter_count():
    # RESETS drq_learner.py comment: "shared enc params: 388416" (3 stacked gray frames)
    trunk = conv_trunk(3, (32, 64, 128, 256), (2, 2, 2, 2), padding="same", init="orthogonal")
    assert sum(p.numel() for p in trunk.parameters()) == 388_416
    assert trunk(torch.zeros(1, 3, 64, 64)).shape == (1, 256, 4, 4)  # SAME: ceil(64 / 2^4) = 4


def _gram(w: torch.Tensor) -> torch.Tensor:
    w = w.flatten(1)
    return w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w


@pytest.mark.parametrize("gain", [1.0, math.sqrt(2.0)])
def test_orthogonal_layers_satisfy_w_wt_equals_gain_squared_identity(gain):
    torch.manual_seed(0)
    for w in (Linear(64, 16, "orthogonal", gain).weight, Linear(16, 64, "orthogonal", gain).weight,
              Conv2d(4, 8, 3, scheme="orthogonal", gain=gain).weight):
        assert torch.allclose(_gram(w.detach()), gain ** 2 * torch.eye(min(w.shape[0], w[0].numel())), atol=1e-5)
    ens = EnsembleLinear(3, 32, 8, "orthogonal", gain)
    for member in ens.weight.detach():  # [in, out]: nn.Linear's [out, in] transposed
        assert torch.allclose(member.T @ member, gain ** 2 * torch.eye(8), atol=1e-5)
    assert not torch.equal(ens.weight[0], ens.weight[1]) and torch.count_nonzero(ens.bias) == 0


def test_the_scheduler_draws_fresh_parameters_from_the_same_initialiser():
    """A head reset of jaxrl-initialised SAC: the new critic head is orthogonal with gain sqrt 2,
    the actor head's mean rows gain sqrt 2 and log-std rows gain 1 (policies.py), biases zero."""
    cfg = make_config("agent=sac", "plasticity=head_reset", "plasticity.every=1")
    torch.manual_seed(0)
    agent = make_agent(dict(cfg["agent"], hidden_dims=[32, 32]), spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (3,)))
    with torch.no_grad():
        for p in agent.parameters():
            p.add_(1.0)  # "trained": nothing orthogonal any more
    build_scheduler(agent, cfg["plasticity"]["rules"]).after_env_step(1, updates=1)
    for member in agent.critic.head.weight.detach():  # [32, 1]
        assert torch.allclose(member.T @ member, torch.tensor([[2.0]]), atol=1e-5)
    head = agent.actor.head.weight.detach()  # [2 * 3, 32]: mean rows, then log-std rows
    assert torch.allclose(head[:3] @ head[:3].T, 2.0 * torch.eye(3), atol=1e-5)
    assert torch.allclose(head[3:] @ head[3:].T, torch.eye(3), atol=1e-5)
    assert torch.count_nonzero(agent.actor.head.bias) == 0
    trunk = agent.critic.trunk[0].weight.detach()  # not in the group: still "trained"
    assert not torch.allclose(trunk[0].T @ trunk[0], 2.0 * torch.eye(32), atol=1e-3)


def test_log_std_forms():
    actor = TanhGaussianActor(1, 1, hidden_dims=[], log_std_bounds=(-10.0, 2.0), log_std_form="tanh")
    with torch.no_grad():
        actor.head.weight.zero_()
        actor.head.bias.copy_(torch.tensor([0.0, 0.0]))
    assert actor._dist_params(torch.zeros(1, 1))[1].item() == pytest.approx(-4.0)  # the middle of [-10, 2]
    clip = TanhGaussianActor(1, 1, hidden_dims=[], log_std_bounds=(-20.0, 2.0), log_std_form="clip")
    with torch.no_grad():
        clip.head.weight.zero_()
        clip.head.bias.copy_(torch.tensor([0.0, 5.0]))
    assert clip._dist_params(torch.zeros(1, 1))[1].item() == 2.0  # clamp(5, -20, 2)


def test_target_entropy_per_agent():
    box5, box6 = spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (6,))
    assert make_agent(dict(agent_cfg("agent=sac"), hidden_dims=[8]), box5, box6).target_entropy == -3.0
    pix = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    drq = make_agent(dict(agent_cfg("agent=drq"), channels=[4], strides=[2], hidden_dims=[8]), pix, box6)
    assert drq.target_entropy == -6.0
    sb3 = make_agent(dict(agent_cfg("agent=sac", "agent.target_entropy_per_action=-1"), hidden_dims=[8]), box5, box6)
    assert sb3.target_entropy == -6.0  # SB3's "auto"


def test_plastic_presets_follow_the_reference_code():
    """PLASTIC (dojeon-ai/PLASTIC @ 3736071): the agent options off by default (Adam, no conv
    LayerNorm, the encoder with the agent's activation); each preset's values as its code ran."""
    for name, head, rho in (("drq", "clean", 0.01), ("drq_atari", "sum", 0.1)):
        a = agent_cfg(f"agent={name}")
        assert a["optimizer"] == "adam" and a["conv_layer_norm"] is False and a["conv_activation"] is None
        assert a["sam_head"] == head and a["sam_rho"] == rho  # the values its preset uses
    dmc = make_config("agent=drq", "env=dmc_pixels/quadruped_run", "plasticity=plastic")
    a, p = dmc["agent"], dmc["plasticity"]
    # train_pixels.py flag rho; only_enc=True
    assert a["optimizer"] == "sam" and a["sam_rho"] == 0.01 and a["sam_head"] == "clean"
    assert a["conv_layer_norm"] is True and a["activation"] == "crelu" and a["conv_activation"] == "relu"
    assert a["lr"] == 3e-4  # the base agent's (Nikishin); PLASTIC's DrQ used 1e-4 (README)
    # RESET_INTERVAL_PER_ENV quadruped-run: 100k agent steps of a 2M-frame run (1M agent steps at
    # action repeat 2)
    steps = dmc["train"]["total_steps"] * dmc["env"]["action_repeat"]
    assert p["every"] == steps // 20 and p["groups"] == ["*", "!encoder"]
    assert p["rules"][0]["optimizer"] == "reset" and p["rules"][0]["target"] == "copy_online"

    atari = make_config("agent=drq_atari", "env=atari/pong", "plasticity=plastic_atari")
    a, p = atari["agent"], atari["plasticity"]
    assert a["optimizer"] == "sam" and a["sam_rho"] == 0.1 and a["sam_head"] == "sum"  # drq_plastic_rr2.sh
    assert a["hidden_dims"] == [256] and a["activation"] == "crelu" and a["conv_activation"] == "relu"
    assert p["unit"] == "updates" and p["every"] == 40000  # reset_per_optimize_step
    assert [r["intervention"] for r in p["rules"]] == ["reset", "reset_optimizer"]
    assert p["rules"][0]["groups"] == ["critic"] and p["rules"][1]["groups"] == ["encoder"]


# ------------------------------------------------------------------ agent x preset table
AGENTS = {  # name: (overrides, observation space, action space, small sizes)
    "sac": (("agent=sac",), spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,)), {"hidden_dims": [8]}),
    "rlpd": (("agent=rlpd",), spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,)), {"hidden_dims": [8]}),
    "iql": (("agent=iql",), spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,)), {"hidden_dims": [8]}),
    "simba": (("agent=simba",), spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,)),
              {"critic_hidden_dim": 8, "actor_hidden_dim": 8}),
    "drq": (("agent=drq",), spaces.Box(0, 255, (3, 16, 16), np.uint8), spaces.Box(-1, 1, (2,)),
            {"hidden_dims": [8], "channels": [4], "strides": [2]}),
    "drq_atari": (("agent=drq_atari", "env=atari/pong"), spaces.Box(0, 255, (4, 84, 84), np.uint8),
                  spaces.Discrete(6), {"hidden_dims": [8]}),
    "bbf": (("agent=bbf", "env=atari/pong"), spaces.Box(0, 255, (4, 84, 84), np.uint8),
            spaces.Discrete(6), {"hidden_dims": [8], "width_scale": 1}),
}
C, A, E, L = "critic", "actor", "encoder", "log_alpha"
SPR = ("critic.transition_model", "critic.projection", "critic.predictor", "critic.head")
# the modules each preset touches on each agent (BBF's network is `critic`; `encoder` is its
# critic.encoder); BBF's own presets need BBF's SPR modules and refuse the other agents
TABLE = {
    "head_reset": {"sac": ("actor.head", "critic.head"), "rlpd": ("actor.head", "critic.head"),
                   "simba": ("actor.head", "critic.head"),
                   "iql": ("actor.head", "critic.head"), "drq": ("actor.head", "critic.head"),
                   "drq_atari": ("critic.head",), "bbf": ("critic.head",)},
    "full_reset": {"sac": (A, C, L), "rlpd": (A, C, L), "simba": (A, C, L), "iql": (A, C, "value"), "drq": (A, C, E, L),
                   "drq_atari": (C, E), "bbf": ("critic.encoder", *SPR)},
    "reset_but_encoder": {"sac": (A, C, L), "rlpd": (A, C, L), "simba": (A, C, L), "iql": (A, C, "value"), "drq": (A, C, L),
                          "drq_atari": (C,), "bbf": SPR},
    "shrink_perturb": {"sac": (A, C), "rlpd": (A, C), "simba": (A, C), "iql": (A, C), "drq": (A, C),
                       "drq_atari": (C,), "bbf": SPR},
    "hare_tortoise": {"sac": (C,), "rlpd": (C,), "simba": (C,), "iql": (C,), "drq": (C, E), "drq_atari": (C, E),
                      "bbf": ("critic.encoder", *SPR)},
    "regen": {"sac": (A, C), "rlpd": (A, C), "simba": (A, C), "iql": (A, C), "drq": (A, C, E), "drq_atari": (C, E),
              "bbf": ("critic.encoder", *SPR)},
    "redo": {"sac": (A, C), "rlpd": (A, C), "simba": (A, C), "iql": (A, C), "drq": (A, C, E), "drq_atari": (C, E),
             "bbf": ("critic.encoder", *SPR)},
    "plastic": {"drq": (A, C, L), "drq_atari": (C,)},  # SAM, conv LayerNorm: DrQ's and DrQ(eps)'s options
    "plastic_atari": {"drq": (C, E), "drq_atari": (C, E)},  # E: its Adam state only (reset_optimizer)
    "bbf": {"bbf": SPR[1:] + ("critic.encoder", "critic.transition_model")},
    "bbf_hare_tortoise": {"bbf": ("critic.encoder", *SPR)},
}


def _covers(names, modules) -> bool:
    return all(any(n == m or n.startswith(m + ".") for m in modules) for n in names) and all(
        any(n == m or n.startswith(m + ".") for n in names) for m in modules)


@pytest.mark.parametrize("preset", sorted(TABLE))
@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_preset_touches_the_same_parts_on_every_agent(preset, name):
    overrides, obs, act, small = AGENTS[name]
    cfg = make_config(*overrides, f"plasticity={preset}")
    groups = [r["groups"] for r in cfg["plasticity"]["rules"]]
    groups += [r["groups"] for r in cfg["plasticity"].get("regularizers", [])]
    if name not in TABLE[preset]:  # a group it lacks, or (plastic*) agent options it does not have
        with pytest.raises((GroupError, ValueError), match="matches nothing|optimizer"):
            agent = make_agent(dict(cfg["agent"], **small), obs, act)
            for g in groups:
                resolve_group(agent, g)
        return
    agent = make_agent(dict(cfg["agent"], **small), obs, act)
    touched = set().union(*(resolve_group(agent, g).params for g in groups))
    assert _covers(touched, TABLE[preset][name]), sorted(touched)
