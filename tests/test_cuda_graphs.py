"""`compile="cudagraphs"` on a CUDA device (run with `-m gpu`; skipped without CUDA).

SAC: a captured agent and an eager one, built from the same seed, fed the same batches with the
same torch seed before every update (identical policy noise), give the same losses within float
tolerance for the 100 updates that follow head reset, shrink & perturb and Hare & Tortoise
interventions (built from the presets, applied in place to both agents through the scheduler);
captured and compiled agree more tightly; `load_training_state` drops the graphs and the recaptured
update still matches eager. DrQ(eps) and BBF (tiny): captured updates run, train and match eager;
augmentation inside a replayed graph draws from the live generator. Parameter storage never
changes. TF32 is off during these tests so that eager and compiled matmuls round alike."""
from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from torch.utils._pytree import tree_map

from agents import SAC
from plasticity.scheduler import build_scheduler
from replay import ReplayBuffer
from tests.conftest import make_config
from tests.test_acceleration import NO_AUGMENT, make_agent, make_batch, storage

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DEVICE = "cuda"
OBS_DIM, ACTION_DIM, BATCH = 8, 2, 64
SAC_METRICS = ("critic_loss", "actor_loss", "alpha")
LOOSE = dict(rtol=1e-3, atol=1e-4)  # captured (compiled) vs eager kernels, over 100+ updates
TIGHT = dict(rtol=1e-5, atol=1e-6)  # captured vs compiled: the same compiled losses and grads


@pytest.fixture(autouse=True)
def exact_fp32():
    """No TF32 (eager and compiled matmuls then round alike), and a fresh dynamo cache per test
    (each test compiles its own agents; keeps clear of dynamo's recompile limit)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch._dynamo.reset()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    torch._dynamo.reset()


def sac(mode: str) -> SAC:
    torch.manual_seed(0)
    return SAC(OBS_DIM, ACTION_DIM, device=DEVICE, compile=mode, hidden_dims=(64, 64))


def cuda_buffer(size: int = 1000) -> ReplayBuffer:
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer.for_spaces(size, (OBS_DIM,), (ACTION_DIM,), device=DEVICE, seed=0)
    buf.add_batch(torch.randn(size, OBS_DIM, generator=g), torch.rand(size, ACTION_DIM, generator=g) * 2 - 1,
                  torch.randn(size, generator=g), torch.randn(size, OBS_DIM, generator=g),
                  torch.rand(size, generator=g) < 0.05, torch.zeros(size, dtype=torch.bool))
    return buf


def sac_batch(buf: ReplayBuffer, i: int):
    """Update i's batch: indices from a CPU generator, so both agents see the same one."""
    idx = torch.randint(0, len(buf), (BATCH,), generator=torch.Generator().manual_seed(1000 + i))
    return buf.batch_at(idx.to(DEVICE))


def to_device(batch):
    return tree_map(lambda t: t.to(DEVICE) if torch.is_tensor(t) else t, batch)


def assert_same_init(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def run_together(agents, batch_of, updates, schedulers=None, start=1):
    """`updates` updates of every agent on batch_of(i), the torch seed set before each (the same
    policy noise / augmentation for all), then each scheduler's after_update, also reseeded (the
    same fresh draws). Returns per agent the list of metric dicts, and the updates at which the
    first agent's scheduler fired."""
    history, fired = [[] for _ in agents], []
    for i in range(start, start + updates):
        batch = batch_of(i)
        for a, agent in enumerate(agents):
            torch.manual_seed(10_000 + i)
            history[a].append(agent.update(batch))
            if schedulers is not None:
                torch.manual_seed(20_000 + i)
                events = schedulers[a].after_update(i, i)
                if a == 0 and events:
                    fired.append(i)
    return history, fired


def assert_close_histories(first, second, names, tol, skip: int = 0):
    """Metric `name` of every update (from `skip` on) as one [updates] tensor per agent."""
    for name in names:
        x = torch.stack([m[name].float().reshape(-1) for m in first[skip:]])
        y = torch.stack([m[name].float().reshape(-1) for m in second[skip:]])
        assert torch.isfinite(x).all() and torch.isfinite(y).all(), name
        torch.testing.assert_close(x, y, **tol, msg=lambda m, name=name: f"{name} (update index "
                                   f"from {skip}, captured vs reference): {m}")


# ------------------------------------------------------------------------------- SAC
PRESETS = {
    "head_reset": ("plasticity.unit=updates",),
    "shrink_perturb": (),
    "hare_tortoise": ("plasticity.tortoise_ema=0.9",),  # a tortoise that really lags the hare
}


@pytest.mark.parametrize("preset", PRESETS)
def test_sac_captured_matches_eager_for_100_updates_after_interventions(preset):
    """The preset's rule fires at updates 10 and 60 (graphs are captured at update 4, after 3
    warm-up calls, and replayed from then on); the 100 updates after the first intervention give
    eager's losses within LOOSE."""
    cfg = make_config(f"plasticity={preset}", "plasticity.every=50", "plasticity.stop_after=60",
                      *PRESETS[preset])
    rules = cfg["plasticity"]["rules"]
    for rule in rules:
        rule["start"] = 10
    graphed, eager = sac("cudagraphs"), sac("none")
    assert_same_init(graphed, eager)
    schedulers = [build_scheduler(agent, copy.deepcopy(rules)) for agent in (graphed, eager)]
    buf = cuda_buffer()
    first, _ = run_together([graphed, eager], lambda i: sac_batch(buf, i), 1, schedulers)
    ptrs = storage(graphed)  # parameters and the optimizer states made by the first update
    rest, fired = run_together([graphed, eager], lambda i: sac_batch(buf, i), 109, schedulers, start=2)
    assert fired == [10, 60]
    assert graphed._graphed.num_graphs == 1  # one key (actor every update), one batch layout
    assert storage(graphed) == ptrs  # every intervention acted in place
    history = [first[a] + rest[a] for a in range(2)]
    assert_close_histories(*history, SAC_METRICS, LOOSE)


def test_sac_captured_matches_compiled_tightly():
    """The same compiled update, replayed from a graph or called: 20 updates (a head reset at 10)
    agree within TIGHT."""
    cfg = make_config("plasticity=head_reset", "plasticity.unit=updates", "plasticity.every=10",
                      "plasticity.stop_after=10")
    graphed, compiled = sac("cudagraphs"), sac("compile")
    assert_same_init(graphed, compiled)
    schedulers = [build_scheduler(agent, copy.deepcopy(cfg["plasticity"]["rules"]))
                  for agent in (graphed, compiled)]
    buf = cuda_buffer()
    history, fired = run_together([graphed, compiled], lambda i: sac_batch(buf, i), 20, schedulers)
    assert fired == [10] and graphed._graphed.num_graphs == 1
    assert_close_histories(*history, SAC_METRICS + ("q", "entropy", "alpha_loss"), TIGHT)


def test_sac_load_training_state_recaptures_and_still_matches_eager():
    """Loading an earlier state (new optimizer-state tensors) drops the graphs; the recaptured
    update uses the loaded moments, not the replaced ones, so the agents still agree."""
    graphed, eager = sac("cudagraphs"), sac("none")
    buf = cuda_buffer()

    def batch_of(i):
        return sac_batch(buf, i)

    before, _ = run_together([graphed, eager], batch_of, 6)
    ptrs = storage(graphed)
    saved = [copy.deepcopy(agent.training_state()) for agent in (graphed, eager)]
    run_together([graphed, eager], batch_of, 6, start=7)  # graphs replayed, moments moved on
    assert graphed._graphed.num_graphs == 1
    for agent, state in zip((graphed, eager), saved):
        agent.load_training_state(state)
    assert graphed._graphed.num_graphs == 0
    for opt in graphed.optimizers.values():  # a loaded lr is a float: back to a device tensor
        assert torch.is_tensor(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"].is_cuda
    assert [p.data_ptr() for p in graphed.parameters()] == ptrs[:len(list(graphed.parameters()))]
    after, _ = run_together([graphed, eager], batch_of, 10, start=7)  # warm-up 3, capture, replays
    assert graphed._graphed.num_graphs == 1
    assert_close_histories(before[0] + after[0], before[1] + after[1], SAC_METRICS, LOOSE)


# ------------------------------------------------------------------- DrQ(eps) and BBF
@pytest.mark.parametrize("name", ["DrQAtari", "BBF"])
def test_pixel_agents_captured_match_eager(name):
    """Without augmentation (with it, the compiled losses draw from inductor's RNG: see
    tests/test_acceleration.py), 10 captured updates give eager's metrics within LOOSE. BBF's
    batches alternate weights / None: two layouts, two graphs."""
    graphed, eager = (make_agent(name, compile=mode, device=DEVICE, **NO_AUGMENT[name])
                      for mode in ("cudagraphs", "none"))
    assert_same_init(graphed, eager)
    first, _ = run_together([graphed, eager], lambda i: to_device(make_batch(name, i)), 1, start=0)
    ptrs = storage(graphed)
    rest, _ = run_together([graphed, eager], lambda i: to_device(make_batch(name, i)), 9, start=1)
    assert graphed._graphed.num_graphs == (2 if name == "BBF" else 1)
    assert storage(graphed) == ptrs
    history = [first[a] + rest[a] for a in range(2)]
    assert_close_histories(*history, sorted(history[1][0]), LOOSE)


@pytest.mark.parametrize("name", ["DrQAtari", "BBF"])
def test_pixel_agents_captured_with_augmentation_train(name):
    """With augmentation: 10 captured updates (3 warm-up calls per layout, then replays) have
    finite metrics and every one of them changes the weights."""
    agent = make_agent(name, compile="cudagraphs", device=DEVICE)
    for i in range(10):
        before = [p.detach().clone() for p in agent.parameters() if p.requires_grad]
        metrics = agent.update(to_device(make_batch(name, i)))
        assert all(torch.isfinite(v).all() for v in metrics.values()), (i, metrics)
        after = [p for p in agent.parameters() if p.requires_grad]
        assert any(not torch.equal(b, p) for b, p in zip(before, after)), i
    assert agent._graphed.num_graphs == (2 if name == "BBF" else 1)


def test_replayed_augmentation_draws_from_the_live_generator():
    """In a replayed DrQ(eps) graph (learning rate set to 0 through its device tensor, so the
    weights stay put), the same torch seed gives the same loss and another seed another loss:
    the random shifts are drawn at every replay, not frozen at capture."""
    agent = make_agent("DrQAtari", compile="cudagraphs", device=DEVICE)
    batch = to_device(make_batch("DrQAtari", 0))
    for i in range(5):
        agent.update(to_device(make_batch("DrQAtari", i)))
    assert agent._graphed.num_graphs == 1
    for group in agent.optimizers["critic"].param_groups:
        group["lr"].fill_(0.0)  # seen by the graph (a device tensor under cudagraphs)
    weights = [p.detach().clone() for p in agent.parameters()]
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(agent.update(batch)["td_loss"])
    assert all(torch.equal(w, p) for w, p in zip(weights, agent.parameters()))
    assert agent._graphed.num_graphs == 1  # all replays
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)
    assert not torch.allclose(losses[2], losses[0], rtol=1e-4, atol=0)
