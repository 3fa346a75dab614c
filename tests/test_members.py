"""Members: many seeds and settings in one process (agents/members.py, runner/group.py).
(a) member k's env, exploration and replay-sampling streams are those of the single run of its
seed; (b) a vectorized group equals M separate agents fed the same batches, with a reset in one
member touching that member only; (c) every preset runs with members; bitwise resume."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.members import MemberStack
from agents.sac import SAC
from plasticity.groups import resolve_group
from plasticity.interventions import Reset
from replay.buffer import Batch
from runner.group import GroupTrainer
from runner.members import MembersError, member_configs, member_specs
from runner.trainer import Trainer
from runner.validate import ConfigError, validate_config
from tests.conftest import TINY, make_config
from tests.test_resume import final_state

ROOT = Path(__file__).resolve().parents[1]
SHORT = (*TINY, "train.total_steps=600", "train.eval_every=300", "train.checkpoint_every=0")


def group(tmp_path, seeds, vary=None, *extra, name="g"):
    members = member_configs(lambda o: make_config(*o), [*SHORT, *extra], {"seeds": seeds, "vary": vary})
    return GroupTrainer(members, tmp_path / name, {"seeds": seeds, "vary": vary})


def test_member_specs_are_the_product_of_seeds_and_values():
    specs = member_specs({"seeds": [0, 1], "vary": {"plasticity.every": [10, 20], "agent.lr": [0.001]}})
    assert [name for name, _ in specs] == [
        "0_seed-0_plasticity.every-10_agent.lr-0.001", "1_seed-0_plasticity.every-20_agent.lr-0.001",
        "2_seed-1_plasticity.every-10_agent.lr-0.001", "3_seed-1_plasticity.every-20_agent.lr-0.001"]
    assert specs[3][1] == ["seed=1", "++plasticity.every=20", "++agent.lr=0.001"]
    assert member_specs({"seeds": [4], "vary": {"plasticity": ["none", "head_reset"]}})[1][1] == \
        ["seed=4", "plasticity=head_reset"]


@pytest.mark.parametrize("overrides, key, words", [
    (("members.seeds=[0,0]",), "members.seeds", "distinct"),
    (("members.seeds=[0,1]", "members.vary={agent.hidden_dims:[[8],[16]]}"), "members.vary.agent.hidden_dims",
     "agent.lr"),
    (("members.seeds=[0,1]", "agent=iql"), "members.seeds", "support: sac, drq, drq_atari, bbf"),
    (("members.seeds=[0,1]", "agent=drq", "env=dmc_pixels/cartpole_swingup", "agent.channels_last=true"),
     "agent.channels_last", "allowed with members: false"),
    (("members.vary={agent.lr:[0.1]}",), "members.vary", "members.seeds is null"),
    (("members.seeds=[0,1]", "members.async_envs=1"), "members.async_envs", "true or false"),
])
def test_bad_members_are_refused_naming_the_key(overrides, key, words):
    with pytest.raises(ConfigError) as err:
        validate_config(make_config(*overrides))
    assert key in str(err.value) and words in str(err.value)


def test_members_that_would_differ_in_the_agent_are_refused():
    with pytest.raises(MembersError, match="agent.activation differs between members"):
        member_configs(lambda o: make_config(*o), list(SHORT),
                       {"seeds": [0], "vary": {"plasticity": ["none", "crelu"]}})


def test_member_streams_equal_the_single_run_of_its_seed(tmp_path):
    g = group(tmp_path, [3, 5])
    single = Trainer(make_config(*SHORT, "seed=5"), tmp_path / "single")
    member = g.members[1]
    for name, p in single.agent.state_dict().items():  # same initial parameters
        assert torch.equal(p, member.agent.state_dict()[name]), name
    g.train()
    single.train()
    warmup = single.cfg["train"]["learning_starts"]
    for field in ("obs", "action", "reward", "next_obs"):  # env + random warm-up actions
        assert torch.equal(single.buffer.storage.fields[field][:warmup],
                           member.buffer.storage.fields[field][:warmup]), field
    assert torch.equal(single.explore.state_dict()["state"]["torch"], member.explore.state_dict()["state"]["torch"])
    assert torch.equal(single.buffer.sampler.generator.get_state(), member.buffer.sampler.generator.get_state())
    assert single.counters["updates"] == member.counters["updates"] == 802  # replay ratio 2
    assert not torch.equal(g.members[0].buffer.storage.fields["obs"][:warmup],
                           member.buffer.storage.fields["obs"][:warmup])  # seeds 3 and 5 differ


def _batch(k: int, i: int) -> Batch:
    g = torch.Generator().manual_seed(1000 * k + i)
    return Batch(torch.randn(16, 3, generator=g), torch.rand(16, 1, generator=g) * 2 - 1,
                 torch.randn(16, generator=g), torch.full((16,), 0.99), torch.randn(16, 3, generator=g),
                 torch.arange(16))


def fixed_policy_noise(monkeypatch) -> None:
    """The same policy noise in a group and in single agents (vmap draws M members' noise at
    once, so its stream differs from M single draws)."""
    monkeypatch.setattr(torch, "randn_like",
                        lambda x, **kw: torch.sin(torch.arange(x.shape.numel(), dtype=x.dtype)).reshape(x.shape))


def assert_same_groups(full, resumed) -> None:
    """Two groups ended alike: every member's parameters, replay, optimizer state (bitwise),
    evaluations and plasticity events."""
    a, b = _final(full), _final(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for m, n in zip(full.members, resumed.members):
        assert m.eval_history == n.eval_history and m.scheduler.events == n.scheduler.events


def side_by_side(agents: list, batches_for, updates: int, between=None):
    """`updates` updates of `agents` as one group and of copies of them as separate agents, on
    the same batches (`batches_for(i)`: one per member); `between(i, separate)` after update i.
    Returns the copies."""
    separate = copy.deepcopy(agents)
    stack = MemberStack(agents)
    for i in range(updates):
        batches = batches_for(i)
        stack.update(batches)
        for agent, batch in zip(separate, batches):
            agent.update(batch)
        if between is not None:
            between(i, separate)
    return separate


def assert_close_agents(agents: list, separate: list) -> None:
    for k, (agent, other) in enumerate(zip(agents, separate)):
        for name, p in agent.state_dict().items():
            torch.testing.assert_close(p, other.state_dict()[name], atol=1e-5, rtol=1e-4, msg=f"{k}: {name}")


def test_group_equals_separate_agents_with_a_reset_in_one_member(monkeypatch):
    fixed_policy_noise(monkeypatch)
    torch.manual_seed(0)
    agents = [SAC(3, 1, hidden_dims=(16, 16), lr=lr) for lr in (1e-3, 3e-4, 1e-4)]
    separate = copy.deepcopy(agents)
    stack = MemberStack(agents)
    for i in range(100):
        batches = [_batch(k, i) for k in range(3)]
        stack.update(batches)
        for agent, batch in zip(separate, batches):
            agent.update(batch)
        if i == 49:  # a head reset of member 1's critic, with its Adam state
            before = {n: t.clone() for n, t in stack.tensors.items()}
            for owner in (agents[1], separate[1]):
                reset = Reset()
                reset.bind(owner, resolve_group(owner, ["critic.head"]))
                torch.manual_seed(7)
                reset.apply()
            for name, t in stack.tensors.items():
                assert torch.equal(t[0], before[name][0]) and torch.equal(t[2], before[name][2]), name
            assert not torch.equal(stack.tensors["critic.head.weight"][1], before["critic.head.weight"][1])
            head = agents[1].critic.head.weight
            assert float(agents[1].optimizers["critic"].state[head]["step"]) == 0.0
            assert float(agents[0].optimizers["critic"].state[agents[0].critic.head.weight]["step"]) == 50.0
    for k in range(3):
        for name, p in agents[k].state_dict().items():
            torch.testing.assert_close(p, separate[k].state_dict()[name], atol=1e-5, rtol=1e-4, msg=name)
        for opt_name, opt in agents[k].optimizers.items():
            other = separate[k].optimizers[opt_name]
            for p, q in zip(opt.param_groups[0]["params"], other.param_groups[0]["params"]):
                assert float(opt.state[p]["step"]) == float(other.state[q]["step"])
                torch.testing.assert_close(opt.state[p]["exp_avg_sq"], other.state[q]["exp_avg_sq"],
                                           atol=1e-7, rtol=1e-3)


def _final(trainer):
    out = {}
    for k, m in enumerate(trainer.members):
        out.update({f"{k}/{n}": v.clone() for n, v in final_state(m).items()})  # params, replay
        for opt_name, opt in m.agent.optimizers.items():
            for pid, state in opt.state_dict()["state"].items():
                out.update({f"{k}/{opt_name}/{pid}/{f}": v.clone() for f, v in state.items()})
    return out


def test_interrupted_group_resumes_bitwise(tmp_path):
    vary = {"plasticity": ["none", "shrink_perturb"]}
    extra = ("++plasticity.unit=updates", "++plasticity.every=150")
    full = group(tmp_path, [0, 1], vary, *extra, name="full")
    full.train()
    part = group(tmp_path, [0, 1], vary, *extra, name="resumed")
    part.train(stop_at=333)  # mid-episode (Pendulum episodes are 200 steps): env snapshots
    del part
    resumed = group(tmp_path, [0, 1], vary, *extra, name="resumed")
    resumed.restore()
    assert resumed.counters["env_steps"] == 333
    resumed.train()
    assert_same_groups(full, resumed)
    # seed-major order; S&P at 150, 300, 450, 600 updates (not 750: under an interval left)
    assert [len(m.scheduler.events) for m in full.members] == [0, 4, 0, 4]


def test_async_envs_give_the_same_group_and_resume_mid_episode(tmp_path):
    """members.async_envs: each member's env in its own process (gymnasium AsyncVectorEnv), all
    stepped at once; the group ends bitwise as the synchronous one, also when stopped mid-episode
    (the env snapshot taken in the worker) and resumed, and either kind resumes the other's."""
    from envs.subprocess_env import SubprocessEnv
    extra = ("train.total_steps=400",)
    sync = group(tmp_path, [0, 1], None, *extra, name="sync")
    sync.train()
    members = member_configs(lambda o: make_config(*o), [*SHORT, *extra], {"seeds": [0, 1]})
    spec = {"seeds": [0, 1], "vary": None, "async_envs": True}
    part = GroupTrainer(members, tmp_path / "async", spec)
    assert isinstance(part.members[0].env, SubprocessEnv)
    part.train(stop_at=250)  # mid-episode (Pendulum: 200 steps)
    del part
    resumed = group(tmp_path, [0, 1], None, *extra, name="async")  # resumed with envs in-process
    resumed.restore()
    resumed.train(stop_at=330)
    del resumed
    again = GroupTrainer(members, tmp_path / "async", spec)  # and async once more
    again.restore()
    again.train()
    assert_same_groups(sync, again)


@pytest.mark.parametrize("preset", ["head_reset", "shrink_perturb", "hare_tortoise", "full_reset",
                                    "regen", "redo", "crelu"])
def test_every_preset_runs_with_members(tmp_path, preset):
    scheduled = preset not in ("crelu", "regen")  # a network option and a regulariser
    extra = ("++plasticity.unit=updates", "++plasticity.every=100") if scheduled else ()
    g = group(tmp_path, [0, 1], None, f"plasticity={preset}", *extra, "train.total_steps=400")
    summary = g.train()
    assert [s["updates"] for s in summary["members"]] == [402, 402]
    if scheduled:  # every 100 updates: 100, 200, 300, and 400 where no_reset_within is 0 (ReDo)
        fired = 4 if preset == "redo" else 3
        assert [len(m.scheduler.events) for m in g.members] == [fired, fired], preset


def test_a_group_runs_and_resumes_from_the_command_line(tmp_path):
    run = tmp_path / "group"
    common = [sys.executable, "train.py", *SHORT, "members.seeds=[0,1]",
              "members.vary={plasticity.every:[100,200]}", "plasticity=head_reset",
              "++plasticity.unit=updates", f"hydra.run.dir={run}", "train.total_steps=400"]
    first = subprocess.run(common, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert sorted(p.name for p in (run / "members").iterdir()) == [
        "0_seed-0_plasticity.every-100", "1_seed-0_plasticity.every-200",
        "2_seed-1_plasticity.every-100", "3_seed-1_plasticity.every-200"]
    more = subprocess.run([sys.executable, "train.py", f"resume={run}", "train.total_steps=500"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert more.returncode == 0, more.stderr[-2000:]
    import json
    summary = json.loads((run / "members" / "3_seed-1_plasticity.every-200" / "summary.json").read_text())
    assert summary["env_steps"] == 500 and summary["seed"] == 1
    assert [e["updates"] for e in summary["plasticity_events"]] == [200]
    # a requeued job (the same command with resume=auto) of a finished group: nothing to do,
    # status 0, and the group's files as they were (Hydra's own .hydra/ notes aside)
    from tests.test_bad_inputs import tree_digest
    finished = {k: v for k, v in tree_digest(run).items() if not k.startswith(".hydra")}
    again = subprocess.run([*(o for o in common if not o.startswith("train.total_steps")),
                            "train.total_steps=500", "resume=auto"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and "finished at 500 env steps" in again.stdout, again.stderr[-1000:]
    assert {k: v for k, v in tree_digest(run).items() if not k.startswith(".hydra")} == finished
    # refused resumes leave every file of the group byte for byte as it was
    before = tree_digest(run)
    for bad, words in ((["agent.hidden_dims=[8,8]", "train.total_steps=600"], "agent.hidden_dims"),
                       (["members.seeds=[0,1,2]", "train.total_steps=600"], "cannot change on resume"),
                       ([], "nothing to train")):
        proc = subprocess.run([sys.executable, "train.py", f"resume={run}", *bad], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-500:]
    assert tree_digest(run) == before


def test_compiled_members_match_eager_members():
    """agent.compile=compile with members: one inductor graph over the stacks, the same values
    as the eager vectorized update (the same draws: fallback_random)."""
    torch.manual_seed(0)
    agents = [SAC(3, 1, hidden_dims=(16, 16), lr=lr) for lr in (1e-3, 3e-4)]
    eager, compiled = MemberStack(copy.deepcopy(agents)), MemberStack(agents, mode="compile")
    for i in range(4):
        batches = [_batch(k, i) for k in range(2)]
        for stack in (eager, compiled):
            torch.manual_seed(i)
            metrics = stack.update(batches)
    assert compiled._compiled._graphs.builds == 1
    for name, t in eager.tensors.items():
        torch.testing.assert_close(compiled.tensors[name], t, atol=1e-5, rtol=1e-4, msg=name)
    assert set(metrics[1]) == {"critic_loss", "q", "actor_loss", "alpha", "alpha_loss", "entropy"}


@pytest.mark.slow
def test_captured_members_replay_the_compiled_update(monkeypatch):
    """agent.compile=cudagraphs with members: the compiled members' update captured per key and
    replayed (a CPU stand-in for the CUDA graph, tests/test_captured_update.py): the same members
    as the compiled group's, one graph per key, the learning rates read on the device (~60 s)."""
    from tests.test_captured_update import Graphs, StandInGraph
    fixed_policy_noise(monkeypatch)
    stacks = []

    class RewindingGraph(StandInGraph):
        """The stand-in runs fn when capturing (a CUDA graph only records it): undo that run's
        in-place effects on the members' tensors and Adam states, so the replay is the update."""

        def capture(self, fn):
            state = [t for t in stacks[-1].tensors.values()]
            state += [x for groups in stacks[-1].groups.values() for g in groups for st in g[2] for x in st]
            saved = [t.clone() for t in state]
            out = super().capture(fn)
            for t, v in zip(state, saved):
                t.copy_(v)
            return out

    runs, graphs = {}, Graphs(RewindingGraph)
    for mode in ("compile", "cudagraphs"):
        torch.manual_seed(0)
        agents = [SAC(3, 1, hidden_dims=(16, 16), lr=lr) for lr in (1e-3, 3e-4)]
        if mode == "cudagraphs":  # the optimizers as under cudagraphs: learning rates are tensors
            for a in agents:
                for opt in a.optimizers.values():
                    opt.param_groups[0]["lr"] = torch.tensor(float(opt.param_groups[0]["lr"]))
        stack = MemberStack(agents, mode, graph_factory=graphs)
        stacks.append(stack)
        for i in range(6):
            stack.update([_batch(k, i) for k in range(2)])
        runs[mode] = [t.clone() for t in stack.tensors.values()]
    assert len(graphs.made) == 1 and graphs.made[0].replays == 3  # 3 eager warm-ups, a capture, 3 replays
    for a, b in zip(runs["compile"], runs["cudagraphs"]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_rlpd_members_with_offline_data(tmp_path):
    """RLPD (10 LayerNorm critics, a random 2 in the target: drawn per member under vmap, the actor
    every 4th update) with a dataset and a full reset at the switch, two members."""
    from runner.collect import collect
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=2, root=tmp_path / "data", progress=False)
    g = group(tmp_path, [0, 1], {"agent.lr": [3e-4, 1e-3]}, "agent=rlpd", "agent.hidden_dims=[32,32]",
              f"offline.dataset={tmp_path / 'data' / 'test' / 'pendulum-random-v0'}",
              "agent.replay_ratio=4", "agent.actor_update_every=4", "plasticity=full_reset",
              "plasticity.unit=switch", "train.total_steps=300", "train.learning_starts=100")
    replay = g.cohorts[0].replay  # one call: online parts stacked, one copy of the dataset for all
    assert replay.mixed and replay.stacked and all(m.buffer.offline.storage is replay.offline for m in g.members)
    summary = g.train()
    assert [len(m.buffer.offline.storage) for m in g.members] == [400] * 4
    assert [m.agent._update_calls for m in g.members] == [4 * 201] * 4
    assert all([(e["updates"], e["env_steps"]) for e in s["plasticity_events"]] == [(0, 0)]
               for s in summary["members"])
    assert [m.agent.optimizers["critic"].param_groups[0]["lr"] for m in g.members] == [3e-4, 1e-3] * 2
    assert all(torch.isfinite(torch.tensor(s["final_eval_return"])) for s in summary["members"])


def test_members_that_may_not_differ_are_refused_by_the_command_line(tmp_path):
    run = tmp_path / "group"
    proc = subprocess.run([sys.executable, "train.py", *SHORT, "members.seeds=[0]",
                           "members.vary={plasticity:[none,crelu]}", f"hydra.run.dir={run}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: members: agent.activation differs")
    assert "Traceback" not in proc.stderr and not run.exists()


def test_a_signal_checkpoints_the_group_and_it_resumes_bitwise(tmp_path, monkeypatch):
    import os
    import signal
    from runner.signals import Interrupted
    full = group(tmp_path, [0, 1], None, name="full")
    full.train()
    update = GroupTrainer._update

    def signalling(self, cohort):
        update(self, cohort)
        if self.counters["updates"] == 150:  # in env step 274 of 600, mid-episode
            os.kill(os.getpid(), signal.SIGTERM)
    with monkeypatch.context() as m:
        m.setattr(GroupTrainer, "_update", signalling)
        with pytest.raises(Interrupted) as stop:
            group(tmp_path, [0, 1], None, name="resumed").train()
    assert stop.value.status == 128 + signal.SIGTERM and "checkpoint written" in str(stop.value)
    resumed = group(tmp_path, [0, 1], None, name="resumed")
    resumed.restore()
    assert resumed.counters["env_steps"] == 274  # the step of update 150 finished, then the stop
    resumed.train()
    assert_same_groups(full, resumed)
