"""Exact resume of every agent on the CPU (SAC: test_resume.py, DrQ: test_pixel_training.py):
BBF with prioritized replay and annealing restarts before and after the cut, DrQ(eps) cut
mid-game, IQL with a dataset; and a checkpoint loaded as a CUDA run maps it
(map_location="cuda")."""
import shutil

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_map

import runner.trainer as trainer_module
from replay import PrioritizedSampler, UniformSampler
from runner.collect import collect
from runner.seeding import rng_state, set_rng_state
from runner.signals import Interrupted
from runner.trainer import Trainer
from tests.conftest import TINY, make_config
from tests.test_pixel_training import BBF, PONG
from tests.test_preemption import signal_at_update
from tests.test_resume import final_state


class OnCuda(torch.Tensor):
    """A CPU tensor that reports device cuda, as every tensor of a checkpoint loaded with
    map_location="cuda" does: torch's device checks (`set_rng_state`, `Generator.set_state`)
    refuse it as they refuse a GPU tensor; every op runs on the CPU data inside it."""

    @staticmethod
    def __new__(cls, data: torch.Tensor):
        out = torch.Tensor._make_wrapper_subclass(cls, data.shape, dtype=data.dtype, device="cuda",
                                                  strides=data.stride(), requires_grad=False)
        out.inner = data
        return out

    def __repr__(self):
        return f"OnCuda({self.inner!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        unwrap = lambda x: x.inner if isinstance(x, OnCuda) else x  # noqa: E731
        return func(*tree_map(unwrap, args), **tree_map(unwrap, kwargs or {}))


def mapped_to_cuda(state):
    return tree_map(lambda x: OnCuda(x) if isinstance(x, torch.Tensor) else x, state)


def load_as_cuda_would(monkeypatch) -> list:
    """Trainer.restore loads with map_location="cuda"; torch.load then gives every tensor on
    the GPU (here: `OnCuda`). Returns the list of loads so mapped, filled as they happen."""
    real_load, real_checkpoint, mapped = torch.load, trainer_module.load_checkpoint, []

    def load(f, map_location=None, **kw):
        state = real_load(f, map_location="cpu", **kw)
        if map_location != "cuda":
            return state
        mapped.append(str(f))
        return mapped_to_cuda(state)
    monkeypatch.setattr(torch, "load", load)
    monkeypatch.setattr(trainer_module, "load_checkpoint",
                        lambda path, config, device: real_checkpoint(path, config, "cuda"))
    return mapped


def cut_at_update(config, run_dir, n: int) -> dict:
    """Run until a SIGTERM right after update `n` checkpoints it (mid-episode); its counters."""
    with pytest.MonkeyPatch.context() as m:
        signal_at_update(m, n)
        trainer = Trainer(config, run_dir)
        with pytest.raises(Interrupted):
            trainer.train()
    return dict(trainer.counters)


def resume(config, cut_dir, run_dir) -> Trainer:
    shutil.copytree(cut_dir, run_dir)  # one checkpoint, resumed by several tests
    trainer = Trainer(config, run_dir)  # as a fresh process would
    trainer.restore()
    return trainer


def assert_bitwise_same(a: Trainer, b: Trainer) -> None:
    """Weights, replay contents, optimizer states, counters, evaluations, interventions."""
    sa, sb = final_state(a), final_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    for name, opt in a.agent.optimizers.items():
        oa, ob = opt.state_dict(), b.agent.optimizers[name].state_dict()
        assert oa["param_groups"] == ob["param_groups"], name
        assert oa["state"].keys() == ob["state"].keys(), name
        for pid, fields in oa["state"].items():
            for field, value in fields.items():
                assert torch.equal(value, ob["state"][pid][field]), (name, pid, field)
    for key in ("env_steps", "updates", "episodes"):
        assert a.counters[key] == b.counters[key], key
    assert a.eval_history == b.eval_history
    assert a.scheduler.events == b.scheduler.events


# ---------------------------------------------------------------- BBF
# resets every 20 updates (at 20, 40, 60 of 61), each restarting n / gamma annealing over 16
# updates; the cut comes after update 30: one reset before it, two after it
BBF_RESETS = (*BBF, "plasticity=bbf", "plasticity.unit=updates", "plasticity.every=20",
              "plasticity.horizon=100", "plasticity.no_reset_within=0", "agent.anneal_updates=16")
CUT = 30


@pytest.fixture(scope="module")
def bbf_runs(tmp_path_factory):
    """(config, the uninterrupted run, a run directory cut after update CUT)."""
    root = tmp_path_factory.mktemp("bbf")
    config = make_config(*BBF_RESETS)
    full = Trainer(config, root / "full")
    full.train()
    counters = cut_at_update(config, root / "cut", CUT)
    assert counters["updates"] == CUT and counters["episodes"] == 0  # mid-game
    return config, full, root / "cut"


def assert_same_sampler(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert torch.equal(sa["generator"], sb["generator"])
    assert torch.equal(sa["leaves"], sb["leaves"])
    assert (sa["clock"], sa["max_priority"]) == (sb["clock"], sb["max_priority"])


def test_bbf_with_prioritized_replay_and_resets_resumes_bitwise(bbf_runs, tmp_path):
    config, full, cut = bbf_runs
    assert isinstance(full.buffer.sampler, PrioritizedSampler)
    assert [e["updates"] for e in full.scheduler.events] == [20, 20, 40, 40, 60, 60]  # 2 rules
    resumed = resume(config, cut, tmp_path / "run")
    assert resumed.agent._cycle_updates == CUT - 20  # annealing restarted at 20, saved with it
    assert resumed.agent.n_step == round(10 * 0.3 ** (10 / 16))
    resumed.train()
    assert_bitwise_same(full, resumed)
    assert_same_sampler(full.buffer.sampler, resumed.buffer.sampler)
    assert len(full.buffer.sampler.tree.leaves.unique()) > 10  # learnt priorities, not max or 0
    for key in ("_cycle_updates", "_act_steps"):
        assert getattr(full.agent, key) == getattr(resumed.agent, key), key
    assert full.agent._cycle_updates == 1  # the last reset, at update 60, restarted it


def test_checkpoint_mapped_to_cuda_resumes_bitwise(bbf_runs, tmp_path, monkeypatch):
    """Every tensor of the checkpoint reports device cuda, as after map_location="cuda": the
    global RNG states and the sampler's generator state go back to the CPU, and the run goes on
    bit for bit. (On a real GPU the weights would live there too; here they stay on the CPU.)"""
    config, full, cut = bbf_runs
    with monkeypatch.context() as m:
        mapped = load_as_cuda_would(m)
        resumed = resume(config, cut, tmp_path / "run")
    assert mapped == [str(tmp_path / "run" / "checkpoint.pt")]
    resumed.train()
    assert_bitwise_same(full, resumed)
    assert_same_sampler(full.buffer.sampler, resumed.buffer.sampler)


def test_rng_states_mapped_to_cuda_are_restored(monkeypatch):
    saved = rng_state()
    expected = torch.rand(5), np.random.rand(3)
    mapped = mapped_to_cuda(saved)
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.set_rng_state(mapped["torch"])  # torch refuses a GPU tensor, as on CUDA
    torch.rand(7), np.random.rand(7)
    set_rng_state(mapped)
    assert torch.equal(torch.rand(5), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    # per-GPU states reach torch.cuda.set_rng_state_all as CPU ByteTensors, one per visible GPU
    # (a stand-in records them: this CPU-only check shows what torch is given, not a CUDA stream)
    received = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", received.append)
    gpu_states = [torch.arange(16, dtype=torch.uint8) + i for i in range(3)]  # saved with 3 GPUs
    set_rng_state({**mapped, "cuda": [OnCuda(s) for s in gpu_states]})
    (given,) = received
    kinds = [(type(s), s.device.type, s.dtype) for s in given]
    assert kinds == [(torch.Tensor, "cpu", torch.uint8)] * 2  # the 3rd GPU is not there
    assert all(torch.equal(s, g) for s, g in zip(given, gpu_states))


@pytest.mark.parametrize("sampler", [UniformSampler, PrioritizedSampler])
def test_sampler_generator_mapped_to_cuda_is_restored(sampler):
    saved = sampler(seed=3)
    torch.rand(4, generator=saved.generator)
    state = saved.state_dict()
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.Generator().set_state(mapped_to_cuda(state)["generator"])
    loaded = sampler(seed=0)
    loaded.load_state_dict(mapped_to_cuda(state))
    assert torch.equal(torch.rand(4, generator=loaded.generator),
                       torch.rand(4, generator=saved.generator))


# ---------------------------------------------------------------- DrQ(eps)
def test_drq_atari_resumes_bitwise_with_resets_and_a_stale_target(tmp_path, monkeypatch):
    """Cut mid-game after update 30: target copied every 4 updates (not synced at the cut), S&P
    at updates 20 (before) and 40, 60 (after)."""
    config = make_config(*PONG, "agent.target_update_every=4", "plasticity=shrink_perturb",
                         "plasticity.unit=updates", "plasticity.every=20",
                         "plasticity.no_reset_within=0")
    full = Trainer(config, tmp_path / "full")
    full.train()
    assert [e["updates"] for e in full.scheduler.events] == [20, 40, 60]
    counters = cut_at_update(config, tmp_path / "cut", CUT)
    assert counters["episodes"] == 0  # inside the first game
    resumed = resume(config, tmp_path / "cut", tmp_path / "run")
    assert (resumed.agent._update_calls, resumed.agent._target_synced) == (CUT, False)
    resumed.train()
    assert_bitwise_same(full, resumed)
    for key in ("_update_calls", "_act_steps", "_target_synced"):
        assert getattr(full.agent, key) == getattr(resumed.agent, key), key


# ---------------------------------------------------------------- IQL
@pytest.fixture(scope="module")
def iql_runs(tmp_path_factory):
    """Pre-training on a dataset, a full reset at the switch, then online fine-tuning with half
    of every batch from the dataset: (config, the uninterrupted run, a run directory cut in the
    online phase, inside the actor's cosine lr decay)."""
    root = tmp_path_factory.mktemp("iql")
    collect("gym:Pendulum-v1", "test/pendulum-random-v0", episodes=2, root=root / "data",
            progress=False)
    config = make_config(*TINY, "agent=iql", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
                         f"offline.dataset={root / 'data' / 'test' / 'pendulum-random-v0'}",
                         "offline.pretrain_updates=100", "agent.actor_lr_decay_steps=1000",
                         "train.total_steps=600", "train.learning_starts=100",
                         "train.eval_every=300",
                         "plasticity=full_reset", "plasticity.unit=switch")
    full = Trainer(config, root / "full")
    full.train()
    assert [e["updates"] for e in full.scheduler.events] == [100]
    cut = Trainer(config, root / "cut")
    cut.train(stop_at=300)  # checkpointed at the episode end at step 400
    assert cut.counters["env_steps"] == 400
    assert 100 < cut.agent.actor_lr_scheduler.last_epoch < 1000
    return config, full, root / "cut"


@pytest.mark.parametrize("cuda_mapped", [False, True])
def test_iql_with_a_dataset_resumes_bitwise_online(iql_runs, tmp_path, monkeypatch, cuda_mapped):
    """`cuda_mapped`: the checkpoint loaded as a CUDA run maps it (both parts' uniform samplers)."""
    config, full, cut = iql_runs
    with monkeypatch.context() as m:
        mapped = load_as_cuda_would(m) if cuda_mapped else []
        resumed = resume(config, cut, tmp_path / "run")
    assert len(mapped) == cuda_mapped
    saved = torch.load(cut / "checkpoint.pt", weights_only=False)["agent"]["actor_lr_schedule"]
    assert resumed.agent.actor_lr_scheduler.last_epoch == saved["last_epoch"]
    resumed.train()
    assert_bitwise_same(full, resumed)
    schedules = full.agent.actor_lr_scheduler, resumed.agent.actor_lr_scheduler
    assert schedules[0].state_dict() == schedules[1].state_dict()
    offline_a, offline_b = full.buffer.offline.sampler, resumed.buffer.offline.sampler
    assert torch.equal(offline_a.generator.get_state(), offline_b.generator.get_state())
