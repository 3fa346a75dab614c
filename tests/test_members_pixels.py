"""Members of the pixel agents (DrQ, DrQ(eps), BBF): a vectorized group equals M separate agents
fed the same batches (with a reset in one member; BBF's priorities too); a group trains from the
trainer and resumes bitwise.
The streams (env, exploration, replay sampling) are the trainer's, agent-independent, and tested
with SAC in tests/test_members.py."""
import copy
import functools

import pytest
import torch

from agents.bbf import BBF
from agents.drq import DrQ
from agents.drq_atari import DrQAtari
from agents.members import MemberStack
from plasticity.groups import resolve_group
from plasticity.interventions import Reset
from runner.group import GroupTrainer
from runner.members import member_configs
from tests.conftest import make_config
from tests.test_drq_atari import OBS, SMALL, pixel_buffer
from tests.test_members import assert_close_agents, assert_same_groups, fixed_policy_noise, side_by_side
from tests.test_bbf import OBS as BBF_OBS, TINY as BBF_TINY, filled_buffer
from tests.test_pixel_training import BBF as BBF_RUN, CARTPOLE, PONG, PRESETS
from tests.test_sam import PIXELS, drq_batch


def _drq(lr, **options):  # no augmentation: the group draws M members' shifts at once, another stream
    return DrQ(PIXELS, 2, hidden_dims=(16,), channels=(4, 8), strides=(2, 2), feature_dim=8,
               augment_pad=0, conv_layer_norm=True, lr=lr, **options)


def _drq_atari(lr, **options):  # tanh: a ReLU unit near 0 passes its gradient or not on float noise
    # (vmap's convolutions sum in another order), and after a reset such a flip parts the runs by ~lr
    return DrQAtari(OBS, 3, augment_pad=0, intensity_scale=0.0, activation="tanh", lr=lr, **SMALL, **options)


@pytest.mark.parametrize("make", [_drq, _drq_atari], ids=["drq", "drq_atari"])
def test_pixel_group_equals_separate_agents_with_a_reset_in_one_member(make, monkeypatch):
    fixed_policy_noise(monkeypatch)
    torch.manual_seed(0)
    agents = [make(lr) for lr in (1e-3, 3e-4)]
    buffers = [pixel_buffer(seed=k) for k in range(2)]

    def batches_for(i):
        return ([drq_batch(seed=100 * k + i) for k in range(2)] if isinstance(agents[0], DrQ)
                else [b.sample(8) for b in buffers])

    def reset_member_1(i, separate):
        if i == 14:  # member 1's critic reset (online and target), with its Adam state
            before = {n: p.clone() for n, p in agents[0].state_dict().items()}
            for owner in (agents[1], separate[1]):
                reset = Reset(target="copy_online")
                reset.bind(owner, resolve_group(owner, ["critic"]))
                torch.manual_seed(7)
                reset.apply()
                owner.on_reset({})
            untouched = agents[0].state_dict().items()  # member 0's tensors
            assert all(torch.equal(p, before[n]) for n, p in untouched)

    assert_close_agents(agents, side_by_side(agents, batches_for, 30, reset_member_1))
    assert not torch.equal(agents[0].critic.head.weight, agents[1].critic.head.weight)


@pytest.mark.parametrize("make", [
    lambda lr: _drq(lr, optimizer="sam", sam_rho=0.05, sam_head="clean"),  # the `plastic` preset's way
    lambda lr: _drq(lr, optimizer="sam", sam_rho=0.05, sam_head="perturbed"),
    lambda lr: _drq_atari(lr, optimizer="sam", sam_rho=0.1, sam_head="sum", max_grad_norm=0.05),
], ids=["drq-sam-clean", "drq-sam-perturbed", "drq_atari-sam-sum-clipped"])
def test_sam_and_clipped_groups_equal_separate_agents(make, monkeypatch):
    """SAM (agents/sam.py) per member in the vectorized update: each member's own perturbation
    (its own gradient norm), the second pass at its w + e; DrQ(eps) with each member's gradients
    clipped by their own norm. Equal to separate agents stepping with `sam_gradients` and
    `clip_grad_norm_`."""
    fixed_policy_noise(monkeypatch)
    torch.manual_seed(0)
    agents = [make(lr) for lr in (1e-3, 3e-4)]
    separate = copy.deepcopy(agents)
    buffers = [pixel_buffer(seed=k) for k in range(2)]
    stack = MemberStack(agents)
    norms = []
    for i in range(12):
        batches = ([drq_batch(seed=100 * k + i) for k in range(2)] if isinstance(agents[0], DrQ)
                   else [b.sample(8) for b in buffers])
        metrics = stack.update(batches)
        for agent, batch in zip(separate, batches):
            agent.update(batch)
        norms += [float(m["grad_norm"]) for m in metrics if "grad_norm" in m]
    assert_close_agents(agents, separate)
    if isinstance(agents[0], DrQAtari):
        assert len(norms) == 24 and min(norms) > 0.05  # every update clipped


def test_bbf_group_equals_separate_agents_priorities_included():
    """BBF on prioritized sequence replay: parameters, AdamW states, the annealing clock and the
    priorities each member hands its buffer equal M separate agents' (tanh: see _drq_atari)."""
    torch.manual_seed(0)
    agents = [BBF(BBF_OBS, 6, augment_pad=0, intensity_scale=0.0, activation="tanh", lr=lr, **BBF_TINY)
              for lr in (1e-4, 5e-5)]
    separate = copy.deepcopy(agents)
    stack = MemberStack(agents)
    buffers = [filled_buffer(), filled_buffer()]
    for _ in range(6):
        batches = [buf.sample_request(agent.replay_request(8)) for agent, buf in zip(separate, buffers)]
        grouped = stack.update(batches)
        for agent, batch, out in zip(separate, batches, grouped):
            torch.testing.assert_close(out["priority"], agent.update(batch).priorities, atol=1e-5, rtol=1e-4)
    for k in range(2):
        assert agents[k]._cycle_updates == separate[k]._cycle_updates == 6
        for name, p in agents[k].state_dict().items():
            torch.testing.assert_close(p, separate[k].state_dict()[name], atol=1e-5, rtol=1e-4, msg=name)


def test_bbf_group_trains_from_the_trainer_with_its_priorities(tmp_path):
    spec = {"seeds": [0, 1], "vary": None}
    overrides = [*BBF_RUN, "train.total_steps=120", "train.learning_starts=100", "train.eval_every=0"]
    g = GroupTrainer(member_configs(lambda o: make_config(*o), overrides, spec), tmp_path, spec)
    replay = g.cohorts[0].replay  # one cohort: one storage, one draw an update
    assert len(g.cohorts) == 1 and replay.stacked and replay.fields["frames"].shape[0] == 2
    summary = g.train()
    assert [s["updates"] for s in summary["members"]] == [21, 21]
    for m in g.members:  # the buffers got the members' own priorities, not only the initial max
        assert m.buffer.sampler.probabilities(torch.arange(100)).unique().numel() > 1
        assert m.agent._cycle_updates == 21


@pytest.mark.parametrize("base", [pytest.param(CARTPOLE, marks=pytest.mark.slow), PONG,
                                  pytest.param(BBF_RUN, marks=pytest.mark.slow)],
                         ids=["drq", "drq_atari", "bbf"])  # DMC rendering: DrQ's is slow (~20 s)
def test_pixel_group_trains_and_resumes_bitwise(tmp_path, base):
    """{none, shrink & perturb every 20 updates} as 2 members, stopped mid-run and resumed."""
    spec = {"seeds": [1], "vary": {"plasticity": ["none", "shrink_perturb"]}}
    overrides = [*base, "train.total_steps=160", "train.learning_starts=100", "train.eval_every=80",
                 "++plasticity.unit=updates", "++plasticity.every=20"]

    def group(name):
        return GroupTrainer(member_configs(lambda o: make_config(*o), overrides, spec), tmp_path / name, spec)

    full = group("full")
    summary = full.train()
    assert [s["updates"] for s in summary["members"]] == [61] * 2
    part = group("resumed")
    part.train(stop_at=130)
    del part
    resumed = group("resumed")
    resumed.restore()
    resumed.train()
    assert_same_groups(full, resumed)
    assert [len(m.scheduler.events) for m in full.members] == [0, 2]  # at 20 and 40 updates


@pytest.mark.parametrize("agent, preset", [pytest.param(a, p, marks=pytest.mark.slow)  # all slow but one
                                           for a in ("drq", "drq_atari", "bbf") for p in PRESETS]
                         + [pytest.param("bbf", "bbf", marks=pytest.mark.slow),
                            pytest.param("bbf", "bbf_hare_tortoise", marks=pytest.mark.slow),
                            pytest.param("drq", "injection", marks=pytest.mark.slow),
                            pytest.param("drq_atari", "injection", marks=pytest.mark.slow),
                            pytest.param("drq", "plastic", marks=pytest.mark.slow), ("drq_atari", "plastic_atari")])
def test_every_preset_runs_with_pixel_members(tmp_path, agent, preset):
    """Item (c) for the pixel agents: each preset on a group of two seeds from the trainer, as
    tests/test_pixel_training.py runs it on one agent (resets every 20 updates on 41 updates),
    firing in every member at its single run's updates. PLASTIC's presets: SAM per member."""
    base = {"drq_atari": PONG, "drq": CARTPOLE, "bbf": BBF_RUN}[agent]
    every = () if preset == "regen" else ("plasticity.unit=updates", "plasticity.every=20")
    groups = ("plasticity.groups=[critic]",) if (agent, preset) == ("drq_atari", "reset_but_encoder") else ()
    spec = {"seeds": [0, 1], "vary": None}
    overrides = [*base, f"plasticity={preset}", *every, *groups, "train.total_steps=140",
                 "train.learning_starts=100", "train.eval_every=0"]
    g = GroupTrainer(member_configs(lambda o: make_config(*o), overrides, spec), tmp_path, spec)
    summary = g.train()
    assert [s["updates"] for s in summary["members"]] == [41, 41]
    if preset != "regen":
        for m in g.members:
            fired = [20, 40] if preset in ("redo", "plastic_atari") else [20]
            assert sorted(e["updates"] for e in m.scheduler.events) == sorted(fired * len(m.scheduler.rules))


@pytest.mark.slow
def test_compiled_pixel_members_match_eager_ones(monkeypatch):
    """compile: the members' DrQ and DrQ(eps) bodies as one inductor graph, with SAM (and
    DrQ(eps)'s clipping) too (~130 s on 2 cores)."""
    fixed_policy_noise(monkeypatch)
    sam_drq = functools.partial(_drq, optimizer="sam", sam_rho=0.05)
    sam_drq_atari = functools.partial(_drq_atari, optimizer="sam", sam_head="sum", max_grad_norm=0.05)
    for make in (_drq, _drq_atari, sam_drq, sam_drq_atari):
        runs = {}
        for mode in ("none", "compile"):
            torch.manual_seed(0)
            stack = MemberStack([make(lr) for lr in (1e-3, 3e-4)], mode)
            buffers = [pixel_buffer(seed=k) for k in range(2)]
            for i in range(4):
                stack.update([drq_batch(seed=10 * i + k) for k in range(2)] if make in (_drq, sam_drq)
                             else [b.sample(8) for b in buffers])
            runs[mode] = [t.clone() for t in stack.tensors.values()]
        for a, b in zip(runs["none"], runs["compile"]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_compiled_bbf_members_match_eager_ones():
    """compile: BBF's members' body as one inductor graph (~70 s on 2 cores)."""
    runs = {}
    for mode in ("none", "compile"):
        torch.manual_seed(0)
        agents = [BBF(BBF_OBS, 6, augment_pad=0, intensity_scale=0.0, activation="tanh", lr=lr, **BBF_TINY)
                  for lr in (1e-4, 5e-5)]
        stack = MemberStack(agents, mode)
        buffers = [filled_buffer(), filled_buffer()]
        for _ in range(3):
            stack.update([buf.sample_request(a.replay_request(8)) for a, buf in zip(agents, buffers)])
        runs[mode] = [t.clone() for t in stack.tensors.values()]
    for a, b in zip(runs["none"], runs["compile"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
