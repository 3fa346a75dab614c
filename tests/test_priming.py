"""Heavy priming and diagnostics inside a real (tiny) training run."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from runner.loop_state import run_budgets
from runner.trainer import Trainer
from tests.conftest import TINY, make_config


def scalars(run_dir, tag):
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)] if tag in events.Tags()["scalars"] else []


def test_priming_runs_once_at_learning_starts_and_diagnostics_are_logged(tmp_path):
    cfg = make_config(*TINY, "train.priming_updates=300", "diagnostics.every=100",
                      "plasticity=head_reset", "plasticity.unit=updates", "plasticity.every=250")
    trainer = Trainer(cfg, tmp_path)
    summary = trainer.train()
    t, rr = cfg["train"], cfg["agent"]["replay_ratio"]
    regular = rr * (t["total_steps"] - t["learning_starts"] + 1)
    assert summary["updates"] == 300 + regular == run_budgets(cfg)["updates"]  # 1902
    # head_reset's no_reset_within = 1: none with less than 250 updates left (1750 is skipped)
    assert [e["updates"] for e in summary["plasticity_events"]] == [250 * k for k in range(1, 7)]
    # the priming updates are ordinary updates: the reset at update 250 fires during priming
    first = summary["plasticity_events"][0]
    assert (first["updates"], first["env_steps"]) == (250, t["learning_starts"])
    dormant = scalars(tmp_path, "plasticity/critic/dormant_ratio")
    assert len(dormant) == summary["updates"] // 100
    assert [step for step, _ in dormant[:3]] == [t["learning_starts"]] * 3  # 3 during priming
    assert all(0.0 <= value <= 1.0 for _, value in dormant)
    for tag in ("srank", "weight_norm", "grad_norm", "init_distance"):
        assert len(scalars(tmp_path, f"plasticity/actor/{tag}")) == len(dormant), tag


def test_diagnostics_off_logs_nothing(tmp_path):
    cfg = make_config(*TINY, "diagnostics.every=0")
    Trainer(cfg, tmp_path).train()
    assert scalars(tmp_path, "plasticity/critic/dormant_ratio") == []


def test_every_preset_runs_end_to_end_with_sac(tmp_path):
    from pathlib import Path
    presets = sorted(p.stem for p in (Path(__file__).parents[1] / "configs/plasticity").glob("*.yaml"))
    assert {"none", "full_reset", "head_reset", "shrink_perturb", "hare_tortoise", "regen", "crelu"} <= set(presets)
    # bbf*: BBF's own modules; plastic*: the pixel agents' options (tests/test_pixel_training.py)
    for preset in (p for p in presets if not p.startswith(("bbf", "plastic"))):
        every = [] if preset in ("none", "regen", "crelu") else ["plasticity.unit=updates", "plasticity.every=100"]
        cfg = make_config(*TINY, "train.total_steps=300", "train.eval_every=0", f"plasticity={preset}", *every)
        summary = Trainer(cfg, tmp_path / preset).train()
        assert summary["plasticity"] == preset
        within = cfg["plasticity"].get("no_reset_within") or 0  # 202 updates: 100 fires, 200 not
        fired = [k for k in range(100, summary["updates"] + 1, 100) if summary["updates"] - k >= 100 * within]
        if preset == "injection":  # once: stop_after = every
            fired = fired[:1]
        assert [e["updates"] for e in summary["plasticity_events"]] == (fired if every else []), preset
