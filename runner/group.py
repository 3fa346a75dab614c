"""A group: M members (runner/members.py) trained in one process, in lockstep.

Each member is an ordinary `Trainer` (its env, replay buffer, exploration stream, reset
scheduler, diagnostics, logger and run directory `<group dir>/members/<name>/`, which `report`
and TensorBoard read as one run each). The group steps every member's env, then makes each of the
`replay_ratio` updates as one vectorized update of all members (agents/members.py) on the batch
each member drew from its own buffer, then gives every member its bookkeeping (scheduler,
evaluation, logging). Members may differ in the replay ratio: those that share one form a
cohort (one stack, one replay draw), and each cohort makes its own number of updates per env
step. On a diagnostics update each member updates alone (eagerly, with hooks).
One checkpoint, `<group dir>/checkpoint.pt`, holds every member (envs mid-episode included) and
the process's RNG, so a group resumes bitwise on the CPU; `group.yaml` names the members. With
`members.async_envs` each member's training env runs in a process of its own
(envs/subprocess_env.py) and the group sends every member's action before it awaits any step.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from omegaconf import OmegaConf

from agents.base import UpdateResult
from agents.members import MemberStack
from agents.serialization import atomic_save, atomic_write_text
from envs.subprocess_env import SubprocessEnv
from replay.member_replay import MemberReplay
from runner.build import train_env_maker
from runner.checkpoint import CHECKPOINT_NAME, CheckpointError, MAY_CHANGE, config_differences, save_checkpoint
from runner.continual import switch_task
from runner.progress import RunClock
from runner.seeding import derived_seed, rng_state, seed_everything, set_rng_state
from runner.signals import Interrupted, StopRequests
from runner.trainer import Trainer

GROUP_NAME = "group.yaml"  # beside the group's checkpoint: the members' names and overrides
GROUP_STREAM = 9  # derived_seed(first member's seed, GROUP_STREAM): the updates' and resets' draws


class GroupTrainer:
    """M members in lockstep; `members` = [(name, resolved config)] (runner/members.py)."""

    def __init__(self, members: list[tuple[str, dict]], run_dir, spec: dict | None = None):
        self.run_dir, self.names, self.spec = Path(run_dir), [n for n, _ in members], spec or {}
        self.members = []
        for name, cfg in members:  # each builds as its single run does, from its own seed
            trainer = Trainer(cfg, self.run_dir / "members" / name)
            trainer.grouped = True
            self.members.append(trainer)
        self.cfg = self.members[0].cfg  # train.*, the env and the agent's structure are shared
        self.async_envs = bool(self.spec.get("async_envs"))
        if self.async_envs:  # each member's training env in a process of its own
            for m in self.members:
                local = m.env
                m.env = SubprocessEnv(train_env_maker(m.cfg["env"], m.cfg["seed"]), local)
                local.close()
        seed_everything(derived_seed(self.cfg["seed"], GROUP_STREAM))
        self.cohorts = cohorts_of(self.members)
        self.stop = StopRequests()

    @property
    def counters(self) -> dict:
        return self.members[0].counters  # every member's env steps are the same (updates: its cohort's)

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        loops = [m._episode.as_loop() if m._episode.running else None for m in self.members]
        return {"config": self.cfg, "counters": dict(self.counters), "names": self.names,
                "rng": rng_state(), "members": [m.state(loop) for m, loop in zip(self.members, loops)]}

    def save(self) -> bool:
        """One checkpoint of every member (after the NaN guard of each). True if written."""
        if not all(m._check_finite(checkpoint=True) for m in self.members):
            return False
        step = self.counters["env_steps"]
        previous = self.counters["last_checkpoint"]
        for m in self.members:
            m._add_wall_time()
            m.counters["last_checkpoint"], m.counters["mid_episode"] = step, m._episode.running
        save_checkpoint(self.state(), self.run_dir / CHECKPOINT_NAME,
                        self.cfg["train"].get("keep_checkpoints", 1),
                        None if previous == step else previous)
        return True

    def restore(self) -> None:
        """Continue from the group's checkpoint; each member's config must fit its saved one."""
        path = self.run_dir / CHECKPOINT_NAME
        if not path.is_file():
            raise CheckpointError(f"no group checkpoint at {path}")
        state = torch.load(path, map_location=self.members[0].device, weights_only=False)
        if state.get("names") != self.names:
            raise CheckpointError(f"{path} holds members {state.get('names')}, not {self.names}")
        for m, saved in zip(self.members, state["members"]):
            diffs = config_differences(saved["config"], m.cfg)
            if diffs:
                raise CheckpointError(f"{path}: member {m.run_dir.name} was written by another "
                                      "config:\n  " + "\n  ".join(diffs) + "\n" + MAY_CHANGE)
            m.restore_state(saved)
        set_rng_state(state["rng"])  # the group's stream, after each member set its own
        for cohort in self.cohorts:
            cohort.stack.bind()  # loading replaced the optimizers' state tensors

    # ------------------------------------------------------------------ loop
    def train(self, stop_at: int | None = None) -> dict:
        """Train every member to train.total_steps; with `stop_at`, stop (checkpointed) at that
        env step. A stop signal checkpoints and raises `Interrupted`."""
        t = self.cfg["train"]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(OmegaConf.to_yaml(OmegaConf.create(
            {"members": self.names, "spec": self.spec})), self.run_dir / GROUP_NAME)
        for k, m in enumerate(self.members):  # one progress bar, the first member's
            m.logger = m.open_run_dir(t["progress"] and k == 0)
        failed = True
        try:
            with self.stop:
                summary = self._loop_until(stop_at)
            failed = False
            return summary
        finally:
            for m in self.members:
                m.logger.close(failed)
                if self.async_envs:
                    m.env.close()  # the env's process

    def _loop_until(self, stop_at: int | None) -> dict:
        t, c = self.cfg["train"], self.counters
        for m in self.members:
            m.begin_loop()
            m.clock = RunClock(t["total_steps"], t["learning_starts"], m.counters["env_steps"], t["eval_every"])
        if c["env_steps"] == 0:
            self._pretrain()
        while c["env_steps"] < t["total_steps"]:
            steps = self._step_envs()
            self._learn()
            for m, (ended, info) in zip(self.members, steps):
                m._after_step(m.logger)
                if m.switches is not None and m.switches.due(m.counters["env_steps"]):
                    ended = switch_task(m, m.logger, ended)
                if ended:
                    m._episode_end(m.logger, info, None)
            step = c["env_steps"]
            if stop_at is not None and step >= stop_at:
                self.save()
                return self._summary()
            if t["checkpoint_every"] and step - c["last_checkpoint"] >= t["checkpoint_every"]:
                self.save()
            if self.stop.requested:
                written = self.save()
                raise Interrupted(self.stop.signum, self.run_dir / CHECKPOINT_NAME, step, written)
        return self._finish()

    def _step_envs(self) -> list[tuple[bool, dict]]:
        """One env step of every member: in turn, or with `async_envs` all sent before any is
        awaited, so the members' envs step in parallel (the same transitions either way)."""
        if not self.async_envs:
            return [m._act_and_store() for m in self.members]
        actions = [m._choose_action() for m in self.members]
        for m, action in zip(self.members, actions):
            m.env.step_async(action)
        return [m._store(action, *m.env.step_wait()) for m, action in zip(self.members, actions)]

    def _pretrain(self) -> None:
        """Offline pre-training updates, then each member's `switch` rules."""
        for _ in range(self.cfg["offline"]["pretrain_updates"] - self.counters["updates"]):
            for cohort in self.cohorts:
                self._update(cohort)
        for m in self.members:
            m._log_events(m.logger, m.scheduler.at_switch(m.counters["updates"], 0))

    def _learn(self) -> None:
        """Heavy priming at learning_starts, then each cohort's `replay_ratio` updates."""
        t, c = self.cfg["train"], self.counters
        if c["env_steps"] == t["learning_starts"] and t["priming_updates"]:
            for _ in range(t["priming_updates"]):
                for cohort in self.cohorts:
                    self._update(cohort)
        if c["env_steps"] >= t["learning_starts"]:
            for cohort in self.cohorts:
                for _ in range(cohort.replay_ratio):
                    self._update(cohort)

    def _update(self, cohort: Cohort) -> None:
        """One update of every member of `cohort`: one vectorized update (its batches drawn in one
        call where replay/member_replay.py applies), or on a diagnostics update each member's own
        eager update inside its diagnostics capture."""
        members = cohort.members
        due = members[0].diagnostics.due(members[0].counters["updates"] + 1)
        requests = [m._request() for m in members]
        stacked = None if due else cohort.replay.sample(requests)  # each member's slots, its own stream
        if stacked is not None:  # member k's batch (views), for its bookkeeping
            batches = [type(stacked)(*[None if f is None else f[k] for f in stacked])
                       for k in range(len(members))]
        else:
            batches = [m.buffer.sample_request(r) for m, r in zip(members, requests)]
        if due:
            results = []
            for m, batch in zip(members, batches):
                with m.diagnostics.capture(True):
                    results.append(m.agent.update(batch))
        else:  # a member's `priority` metric is its replay feedback (BBF), as `update` returns it
            results = [UpdateResult({k: v for k, v in x.items() if k != "priority"}, x.get("priority"))
                       for x in cohort.stack.update(None if stacked is not None else batches, stacked)]
        for m, batch, result in zip(members, batches, results):
            m._metrics = m._after_update(m.logger, batch, result, due)

    def _finish(self) -> dict:
        """Final evaluations, the group checkpoint, each member's agent.pt and summary.json."""
        c = self.counters
        for m in self.members:
            if not m.eval_history or m.eval_history[-1]["env_steps"] != c["env_steps"]:
                m._evaluate(m.logger)
        if self.save():
            for m in self.members:  # its own tensors only (a view would save the whole stack)
                atomic_save(_compact(m.agent.saved_state()), m.run_dir / "agent.pt")
        for m in self.members:
            m.logger.summary(m._summary())
        return self._summary()

    def _summary(self) -> dict:
        """The members' summaries, and what train.py prints: the mean final return and the
        member-updates per second of the group."""
        members = [m._summary() for m in self.members]
        wall = max(max(m.counters["wall_time"] for m in self.members), 1e-9)
        finals = [s["final_eval_return"] for s in members if s["final_eval_return"] is not None]
        return {"members": members, "env_steps": self.counters["env_steps"],
                "updates": max(s["updates"] for s in members), "wall_time_s": wall,
                "final_eval_return": sum(finals) / len(finals) if finals else float("nan"),
                "updates_per_s": sum(s["updates"] for s in members) / wall}


class Cohort(NamedTuple):
    """The members that share a replay ratio: one stack (one vectorized update) and one replay
    (one draw of all their batches), `replay_ratio` updates per env step."""
    replay_ratio: int
    members: list  # their Trainers, in the group's order
    stack: MemberStack
    replay: MemberReplay  # one storage [M, capacity, ...]


def cohorts_of(members: list) -> list[Cohort]:
    """The group's cohorts, in the order their replay ratios first appear among the members."""
    by_ratio: dict[int, list] = {}
    for m in members:
        by_ratio.setdefault(int(m.cfg["agent"]["replay_ratio"]), []).append(m)
    return [Cohort(ratio, ms, MemberStack([m.agent for m in ms], ms[0].agent.speed_mode),
                   MemberReplay([m.buffer for m in ms])) for ratio, ms in by_ratio.items()]


def _compact(obj):
    """`obj` with every tensor copied into storage of its own size."""
    if torch.is_tensor(obj):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_compact(v) for v in obj)
    return obj
