"""Pixel agents from the trainer: DrQ(eps) on real Pong, DrQ on real DMC pixels (with an eval
video), every plasticity preset on a pixel agent, and a bitwise resume with frame storage."""
import pytest
import torch

from replay import FrameStorage
from runner.trainer import Trainer
from tests.conftest import make_config

BASE = ("device=cpu", "train.eval_every=0", "train.eval_episodes=1", "train.log_every=50",
        "train.checkpoint_every=0", "train.progress=false", "diagnostics.every=50")
PONG = ("agent=drq_atari", "env=atari/pong", "agent.batch_size=8", "agent.buffer_size=2000",
        "agent.hidden_dims=[32]", "agent.channels=[8,16,16]", "train.total_steps=160",
        "train.learning_starts=100", *BASE)
# cartpole: action repeat 8 -> 125 agent steps per episode; 32x32 renders keep the CPU cost low
CARTPOLE = ("agent=drq", "env=dmc_pixels/cartpole_swingup", "env.image_size=32",
            "agent.batch_size=8", "agent.buffer_size=2000", "agent.hidden_dims=[32,32]",
            "agent.channels=[8,8]", "agent.strides=[2,1]", "agent.feature_dim=16", *BASE)


def test_drq_atari_trains_on_real_pong(tmp_path):
    trainer = Trainer(make_config(*PONG), tmp_path)
    assert isinstance(trainer.buffer.storage, FrameStorage)
    summary = trainer.train()
    assert summary["env_steps"] == 160 and summary["updates"] == 61
    # a random-ish agent loses Pong 0-21 or close to it; the score is normalised by the table
    ret = summary["final_eval_return"]
    assert -21 <= ret <= -15
    assert summary["final_eval_human_normalized"] == pytest.approx((ret + 20.7) / (14.6 + 20.7))
    batch = trainer.buffer.sample(4)
    assert batch.obs.shape == (4, 4, 84, 84) and batch.obs.dtype == torch.uint8
    assert batch.action.dtype == torch.int64


def test_drq_trains_on_real_dmc_pixels_and_records_a_video(tmp_path):
    cfg = make_config(*CARTPOLE, "train.total_steps=150", "train.learning_starts=100",
                      "train.video=true")
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    assert summary["updates"] == 51 and summary["episodes"] == 1
    assert summary["final_eval_return"] is not None and summary["final_eval_return"] >= 0
    assert trainer.buffer.sample(2).obs.shape == (2, 3, 32, 32)  # agent=drq: 3 stacked gray frames
    video = tmp_path / "videos" / "eval_00000150.mp4"
    assert video.stat().st_size > 1000


BBF = ("agent=bbf", "env=atari/pong", "agent.batch_size=4", "agent.buffer_size=2000",
       "agent.width_scale=1", "agent.hidden_dims=[32]", "agent.spr_horizon=2", "agent.replay_ratio=1",
       "train.total_steps=160", "train.learning_starts=100", *BASE)
PRESETS = ["head_reset", "shrink_perturb", "hare_tortoise", "reset_but_encoder", "full_reset", "regen", "redo"]


SLOW_CASES = {("bbf", "redo")}  # ~25 s (ReDo's probe update of the Impala net); -m slow runs it


@pytest.mark.parametrize("agent, preset", [pytest.param(a, p, marks=pytest.mark.slow) if (a, p) in SLOW_CASES
                                           else (a, p) for a in ("drq", "drq_atari", "bbf") for p in PRESETS]
                         + [("bbf", "bbf"), ("bbf", "bbf_hare_tortoise"),
                            ("drq", "injection"), ("drq_atari", "injection"),
                            ("drq", "plastic"), ("drq_atari", "plastic_atari")])
def test_every_preset_applies_to_pixel_agents(tmp_path, preset, agent):
    """Resets every 20 updates on 41 updates of each pixel agent (its groups resolve, it fires;
    not at 40, which leaves less than no_reset_within of an interval)."""
    base = {"drq_atari": PONG, "drq": CARTPOLE, "bbf": BBF}[agent]
    every = () if preset == "regen" else ("plasticity.unit=updates", "plasticity.every=20")
    groups = ("plasticity.groups=[critic]",) if (agent, preset) == ("drq_atari", "reset_but_encoder") else ()
    cfg = make_config(*base, f"plasticity={preset}", *every, *groups, "train.total_steps=140",
                      "train.learning_starts=100")
    trainer = Trainer(cfg, tmp_path)
    trainer.train()
    if preset != "regen":
        rules = len(trainer.scheduler.rules)  # bbf, plastic_atari: 2 rules, bbf_hare_tortoise: 3, others 1
        # ReDo fires to the end (no_reset_within 0), plastic_atari up to the last update but one
        fired = [20, 40] if preset in ("redo", "plastic_atari") else [20]
        assert sorted(e["updates"] for e in trainer.scheduler.events) == sorted(fired * rules)


def test_pixel_run_resumes_bitwise_identical(tmp_path):
    cfg = make_config(*CARTPOLE, "train.total_steps=300", "train.learning_starts=100",
                      "train.eval_every=150", "plasticity=shrink_perturb",
                      "plasticity.unit=updates", "plasticity.every=60")
    full = Trainer(cfg, tmp_path / "full")
    full.train()
    interrupted = Trainer(cfg, tmp_path / "resumed")
    interrupted.train(stop_at=200)  # stops at the episode end at step 250
    assert interrupted.counters["env_steps"] == 250
    del interrupted
    resumed = Trainer(cfg, tmp_path / "resumed")
    resumed.restore()
    resumed.train()
    for (name, a), b in zip(full.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name
    for name, a in full.buffer.storage.fields.items():
        assert torch.equal(a, resumed.buffer.storage.fields[name]), name
    assert full.eval_history == resumed.eval_history
    assert full.scheduler.events == resumed.scheduler.events
