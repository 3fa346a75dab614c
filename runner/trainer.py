"""The off-policy training loop: act, store, update `replay_ratio` times, evaluate, log,
checkpoint. Agents and the replay buffer are built from the config; the loop knows nothing
about any agent's internals."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from agents import make_agent
from agents.serialization import atomic_write_text
from plasticity.diagnostics import Diagnostics
from plasticity.scheduler import build_scheduler
from runner.build import make_buffer, make_envs, score_normalizer
from agents.serialization import remove_orphan_temps
from envs.snapshot import env_snapshot, restore_env_snapshot
from runner.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from runner.nonfinite import NonFiniteGuard
from runner.side_batch import STATISTICS_STREAM, side_batch, side_seed
from runner.continual import TaskSwitches, set_task, switch_task
from runner.loop_state import Episode, run_budgets, run_summary
from runner.progress import RunClock, duration, estimate_message
from runner.signals import Interrupted, StopRequests
from runner.eval_round import evaluation_round
from runner.logger import RunLogger
from runner.offline import attach_offline, load_pretrained, reward_transform
from runner.seeding import RngStream, derived_seed, rng_state, seed_everything, set_rng_state
from runner.validate import ConfigError, resolve_device, validate_config

EXPLORE_STREAM = 8  # derived_seed(seed, EXPLORE_STREAM): the policy's draws while collecting


class Trainer:
    """One run. `cfg` is a resolved config dict (see configs/train.yaml)."""

    def __init__(self, cfg: dict, run_dir):
        validate_config(cfg)
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.device = resolve_device(cfg["device"])
        seed, env_cfg, agent_cfg = cfg["seed"], cfg["env"], cfg["agent"]
        seed_everything(seed)
        self.env, self.eval_env = make_envs(env_cfg, seed)
        self.normalize_score = score_normalizer(env_cfg["id"])
        try:
            self.agent = make_agent(agent_cfg, self.env.observation_space, self.env.action_space,
                                    self.device)
        except ValueError as err:  # an agent that does not fit the env's spaces
            raise ConfigError(f"invalid config:\n  agent.name: {err}") from err
        offline = cfg["offline"]
        if offline["init_from"]:  # before the scheduler binds: snapshots start from these weights
            load_pretrained(self.agent, offline["init_from"])
        buffer = make_buffer(agent_cfg, self.env, env_cfg, self.device, seed)
        self.buffer, offline_data = attach_offline(buffer, offline, self.env, env_cfg["id"], self.device, seed)
        self.reward_transform = reward_transform(offline, offline_data)
        plasticity, diag = cfg["plasticity"], cfg["diagnostics"]
        self.scheduler = build_scheduler(self.agent, plasticity["rules"], plasticity.get("regularizers"),
                                         run_budgets(cfg))
        # ReDo scores units on replay states drawn off the training stream (runner/side_batch.py)
        self.scheduler.set_batch_source(
            lambda size: side_batch(self, side_seed(self, STATISTICS_STREAM), size))
        self.diagnostics = Diagnostics(self.agent, diag["groups"], diag["every"], diag["tau"],
                                       diag["srank_delta"])
        self.counters = {"env_steps": 0, "updates": 0, "episodes": 0, "wall_time": 0.0,
                         "last_checkpoint": 0, "mid_episode": False, "switches": 0}
        self.eval_history: list[dict] = []
        self.explore = RngStream(derived_seed(seed, EXPLORE_STREAM), self.device)
        self.grouped = False  # a member of a group (runner/group.py), which checkpoints for it
        self.guard = NonFiniteGuard(self.agent, self.device)
        sequence = env_cfg.get("sequence")  # continual RL (runner/continual.py)
        self.switches = TaskSwitches(sequence, cfg["train"]["total_steps"]) if sequence else None
        self.stop = StopRequests()  # entered by train(): signals stop the loop after a step
        self._loop = None  # (obs, episode return, in episode) restored from a mid-episode checkpoint
        self.clock: RunClock | None = None  # times the run's phases for the estimate (train())
        self._estimated = False
        self.label: str | None = None  # the progress bar's label (a multirun job's name)

    # ------------------------------------------------------------ checkpoints
    def state(self, loop=None) -> dict:
        """Everything to continue; `loop` = (obs, episode return, in episode) when the env is
        mid-episode, saved with the env's own state where the env allows (envs/snapshot.py)."""
        env_state = env_snapshot(self.env) if loop is not None else None
        return {"config": self.cfg, "agent": self.agent.training_state(),
                "replay": self.buffer.state_dict(), "rng": rng_state(),
                "scheduler": self.scheduler.state_dict(),
                "action_space_rng": self.env.action_space.np_random.bit_generator.state,
                "explore_rng": self.explore.state_dict(),
                "counters": dict(self.counters), "eval_history": list(self.eval_history),
                "env_state": env_state, "loop": loop if env_state is not None else None}

    def save(self, loop=None) -> bool:
        """Checkpoint, after making sure no NaN or inf is in it (the guard stops the run if so,
        or under train.on_nonfinite=warn skips the write). True if written."""
        c = self.counters
        if not self._check_finite(checkpoint=True):
            return False
        previous, c["last_checkpoint"] = c["last_checkpoint"], c["env_steps"]
        if previous == c["env_steps"]:  # written again at the same step (the final one): the
            previous = None             # file it replaces is not kept as an older checkpoint
        save_checkpoint(self.state(loop), self.run_dir / CHECKPOINT_NAME,
                        self.cfg["train"].get("keep_checkpoints", 1), previous)
        return True

    def restore(self, path=None) -> None:
        """Continue from a checkpoint (default: this run's). Refuses incompatible configs."""
        self.restore_state(load_checkpoint(path or self.run_dir / CHECKPOINT_NAME, self.cfg, self.device))

    def restore_state(self, state: dict) -> None:
        """Continue from a loaded checkpoint's state (`state()`'s dict)."""
        self.agent.load_training_state(state["agent"])
        self.buffer.load_state_dict(state["replay"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.env.action_space.np_random.bit_generator.state = state["action_space_rng"]
        if "explore_rng" in state:  # checkpoints written before the exploration stream lack it
            self.explore.load_state_dict(state["explore_rng"])
        self.counters.update(state["counters"])
        self.eval_history = list(state["eval_history"])
        set_rng_state(state["rng"])
        if state.get("loop") is not None:  # the env steps on from where the checkpoint was taken
            restore_env_snapshot(self.env, state["env_state"])
            self._loop = state["loop"]
        elif self.counters["mid_episode"]:  # an env that cannot be saved: end its episode so
            self.buffer.storage.truncate_newest()  # n-step returns never run into the next one
            self.counters["episodes"] += 1
        self.counters["mid_episode"] = False
        if self.switches is not None:  # the task in force at the checkpoint
            set_task((self.env, self.eval_env), self.counters.get("switches", 0) % self.switches.tasks)

    # ------------------------------------------------------------------ loop
    def _reset(self):
        seed = derived_seed(self.cfg["seed"], 0, self.counters["episodes"])
        return self.env.reset(seed=seed)[0]

    def _evaluate(self, logger: RunLogger) -> None:
        tick = time.perf_counter()
        evaluation_round(self, logger)
        if self.clock is not None:
            self.clock.add("eval", time.perf_counter() - tick)

    def train(self, stop_at: int | None = None) -> dict:
        """Run until train.total_steps env steps. With `stop_at`, stop (and checkpoint) at the
        first episode end at or after that many env steps, as an interruption would. A stop
        signal (runner/signals.py) ends the loop after the current env step with a checkpoint
        and raises `Interrupted`; NaN or inf raises `NonFiniteError` (runner/nonfinite.py)."""
        logger = self.open_run_dir(self.cfg["train"]["progress"])
        failed = True  # an error or a signal: W&B marks the run failed (a resume continues it)
        try:
            with self.stop:
                summary = self._loop_until(logger, stop_at)
            failed = False
            return summary
        finally:
            logger.close(failed)

    def open_run_dir(self, progress: bool) -> RunLogger:
        """The run directory made ready (temp files of an interrupted write removed, config.yaml
        written) and its logger (a progress bar if `progress`)."""
        t = self.cfg["train"]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for tmp in remove_orphan_temps(self.run_dir, (CHECKPOINT_NAME, "agent.pt", "config.yaml",
                                                      "summary.json")):
            print(f"removed {tmp}, left by a write that was interrupted", file=sys.stderr)
        atomic_write_text(OmegaConf.to_yaml(OmegaConf.create(self.cfg)), self.run_dir / "config.yaml")
        return RunLogger(self.run_dir, t["total_steps"], self.counters["env_steps"], progress,
                         config=self.cfg, label=self.label)

    def begin_loop(self) -> None:
        """The loop's state as training (re)starts: wall clock, log window, the episode."""
        c = self.counters
        self._wall = time.perf_counter()  # wall time since the last checkpoint (counters)
        self._window = (self._wall, c["env_steps"], c["updates"])  # the log window's start
        self._episode, self._metrics = self._start_episode(), {}

    def _loop_until(self, logger: RunLogger, stop_at: int | None) -> dict:
        """Env steps until the budget, each: act and store, learn, then the bookkeeping of the
        step (bar, evaluation, interventions, logging) and, where an episode ends, of the episode
        (game over, checkpoint). Each concern is one method below."""
        t, c = self.cfg["train"], self.counters
        self.begin_loop()
        if c["env_steps"] == 0:  # the online phase begins (a resume always starts later)
            self._pretrain(logger)
        self.clock = RunClock(t["total_steps"], t["learning_starts"], c["env_steps"], t["eval_every"])
        while c["env_steps"] < t["total_steps"]:
            tick, evaluating = time.perf_counter(), self.clock.seconds["eval"]
            ended, info = self._act_and_store()
            self._learn(logger)
            self._after_step(logger)
            self._time_step(logger, tick, evaluating, c["env_steps"] >= t["learning_starts"])
            if self.switches is not None and self.switches.due(c["env_steps"]):
                ended = switch_task(self, logger, ended)  # a continual run's next task
            if ended and self._episode_end(logger, info, stop_at):
                return self._summary()  # stop_at reached at a game over, checkpointed
            if self.stop.requested:
                self._interrupt()
        return self._finish(logger)

    def _start_episode(self) -> Episode:
        if self._loop is not None:  # a mid-episode checkpoint: the env was restored with it
            episode, self._loop = Episode(*self._loop), None
            return episode
        return Episode(self._reset())

    def _pretrain(self, logger: RunLogger) -> None:
        """Offline pre-training on the dataset alone (IQL: offline.pretrain_updates), then the
        `switch` rules (warm start vs reset) as the online phase begins."""
        c = self.counters
        pretrain = self.cfg["offline"]["pretrain_updates"]
        self._metrics = self._extra_updates(logger, pretrain - c["updates"], "pretrain", interruptible=True)
        if self.stop.requested:
            self._interrupt(with_episode=False)
        self._log_events(logger, self.scheduler.at_switch(c["updates"], 0))

    def _act_and_store(self) -> tuple[bool, dict]:
        """One env step, uniform random actions before learning_starts and the agent's after,
        into replay (reward transformed for training; the logged return is the raw one, Atari
        clips `reward`). Returns (the episode ended, the env's info)."""
        action = self._choose_action()
        return self._store(action, *self.env.step(action))

    def _choose_action(self):
        """Uniform random before learning_starts, the agent's (its exploration stream) after."""
        if self.counters["env_steps"] < self.cfg["train"]["learning_starts"]:
            return self.env.action_space.sample()
        with self.explore.active():
            return self.agent.act(self._episode.obs)

    def _store(self, action, next_obs, reward, terminated, truncated, info) -> tuple[bool, dict]:
        """The step's transition into replay and the episode's bookkeeping (see _act_and_store)."""
        c, episode = self.counters, self._episode
        self.buffer.add(episode.obs, action, self.reward_transform(reward), next_obs, terminated, truncated)
        episode.obs, episode.running = next_obs, True
        episode.ret += float(info.get("raw_reward", reward))
        c["env_steps"] += 1
        return terminated or truncated, info

    def _learn(self, logger: RunLogger) -> None:
        """Heavy priming once at learning_starts (Nikishin et al. 2022, "SAC w/ HP"), then
        `replay_ratio` updates per env step."""
        t, c = self.cfg["train"], self.counters
        if c["env_steps"] == t["learning_starts"] and t["priming_updates"]:
            self._metrics = self._extra_updates(logger, t["priming_updates"], "priming")
        if c["env_steps"] >= t["learning_starts"]:
            for _ in range(self.cfg["agent"]["replay_ratio"]):
                self._metrics = self._update(logger)

    def _after_step(self, logger: RunLogger) -> None:
        """The bar; an evaluation when due, before this step's env-step interventions (as
        rl_with_resets evaluates, then resets); the interventions; the log window."""
        t, c = self.cfg["train"], self.counters
        step = c["env_steps"]
        logger.progress(1)
        if t["eval_every"] and step % t["eval_every"] == 0:
            self._evaluate(logger)
        self._log_events(logger, self.scheduler.after_env_step(step, c["updates"]))
        if step % t["log_every"] == 0:
            self._check_finite()
            self._window = self._log_window(logger, self._metrics, self._window)

    def _episode_end(self, logger: RunLogger, info: dict, stop_at: int | None) -> bool:
        """An episode ended. At a game over (an Atari life loss ends the agent's episode while
        the game goes on, so checkpoints wait for a fresh env) log the game's return and
        checkpoint when due; then a fresh episode. True when `stop_at` is reached."""
        t, c, episode = self.cfg["train"], self.counters, self._episode
        step = c["env_steps"]
        c["episodes"], episode.running = c["episodes"] + 1, False
        game_over = info.get("game_over", True)
        if game_over:
            logger.scalars("train", {"episode_return": episode.ret}, step)
            episode.ret = 0.0
        stopping = stop_at is not None and step >= stop_at and game_over
        due = game_over and t["checkpoint_every"] and step - c["last_checkpoint"] >= t["checkpoint_every"]
        if (stopping or due) and not self.grouped:  # a group checkpoints its members itself
            self._add_wall_time()
            self.save()
        if not stopping:
            episode.obs = self._reset()
        return stopping

    def _finish(self, logger: RunLogger) -> dict:
        """The final evaluation (unless this step had one), checkpoint (with the env where an
        episode is under way), agent.pt and summary.json."""
        c, episode = self.counters, self._episode
        if not self.eval_history or self.eval_history[-1]["env_steps"] != c["env_steps"]:
            self._evaluate(logger)
        self._add_wall_time()
        c["mid_episode"] = episode.running
        if self.save(episode.as_loop() if episode.running else None):
            self.agent.save(self.run_dir / "agent.pt")
        summary = self._summary()
        logger.summary(summary)
        return summary

    def _add_wall_time(self) -> None:
        now = time.perf_counter()
        self.counters["wall_time"] += now - self._wall
        self._wall = now

    def _time_step(self, logger: RunLogger, tick: float, evaluating: float, learning: bool) -> None:
        """Time the env step that began at `tick` (less any evaluation in it) for the estimate
        of the time left (runner/progress.py): on the bar every 100 steps, printed once after
        the first 100 learning steps."""
        clock = self.clock
        spent = time.perf_counter() - tick - (clock.seconds["eval"] - evaluating)
        clock.add("learning" if learning else "random", spent)
        step = self.counters["env_steps"]
        if step % 100 == 0:
            logger.progress(0, left=duration(clock.left(step)))
        if clock.counts["learning"] == 100 and not self._estimated:
            self._estimated = True
            logger.write(estimate_message(clock, step, self.device.type, torch.cuda.is_available()))

    def _interrupt(self, with_episode: bool = True) -> None:
        """A stop signal arrived: checkpoint where the loop is (the env with it), then raise
        `Interrupted`."""
        c = self.counters
        self._add_wall_time()
        loop = self._episode.as_loop() if with_episode else None
        c["mid_episode"] = loop is not None and loop[2]
        written = self.save(loop)
        raise Interrupted(self.stop.signum, self.run_dir / CHECKPOINT_NAME, c["env_steps"], written)

    def _check_finite(self, checkpoint: bool = False) -> bool:
        """The non-finite guard's verdict (runner/nonfinite.py; a host sync): True when all is
        finite; raises NonFiniteError under train.on_nonfinite=stop."""
        c = self.counters
        kept = (f"the checkpoint of env step {c['last_checkpoint']} is intact"
                if (self.run_dir / CHECKPOINT_NAME).is_file() else "no checkpoint was written")
        return self.guard.check(c["env_steps"], c["updates"], kept,
                                self.cfg["train"].get("on_nonfinite", "stop"), checkpoint)

    def _update(self, logger: RunLogger) -> dict:
        """One gradient update, then the scheduler; diagnostics on every K-th update."""
        due = self.diagnostics.due(self.counters["updates"] + 1)
        with self.diagnostics.capture(due):
            batch = self._sample()
            metrics = self.agent.update(batch)
        return self._after_update(logger, batch, metrics, due)

    def _sample(self):
        """What the agent asks for (BBF: sequences, an annealed n, importance weights)."""
        return self.buffer.sample_request(self._request())

    def _request(self):
        """The agent's `ReplayRequest` for its next update, at the config's batch size."""
        return self.agent.replay_request(self.cfg["agent"]["batch_size"])

    def _after_update(self, logger: RunLogger, batch, metrics, due: bool) -> dict:
        """An update's bookkeeping: priorities, the NaN guard, the count, the diagnostics
        (`due`: measured on this update), the scheduler."""
        c = self.counters
        if metrics.priorities is not None:  # [B] new priorities of the sampled slots (PER)
            self.buffer.update_priorities(batch.idx, metrics.priorities)
        self.guard.observe(metrics)
        c["updates"] += 1
        if due and self._check_finite():  # measures of NaN features would fail (linalg.svd)
            logger.scalars("plasticity", self.diagnostics.measure(), c["env_steps"])
        self._log_events(logger, self.scheduler.after_update(c["updates"], c["env_steps"]))
        return metrics

    def _extra_updates(self, logger: RunLogger, n: int, label: str,
                       interruptible: bool = False) -> dict:
        """`n` updates without env steps (offline pre-training, heavy priming). They are
        ordinary updates: counted, seen by the scheduler and the diagnostics. `interruptible`:
        a stop signal ends them early (pre-training resumes from its update count)."""
        metrics = {}
        for i in range(n):
            metrics = self._update(logger)
            if (i + 1) % 1000 == 0 or i + 1 == n:
                self._check_finite()
                logger.progress(0, **{label: f"{i + 1}/{n}"})
                logger.refresh()
            if interruptible and self.stop.requested:
                break
        return metrics

    def _log_events(self, logger: RunLogger, events: list[dict]) -> None:
        for event in events:
            logger.scalars("plasticity", {"reset": len(self.scheduler.events)}, event["env_steps"])
            logger.progress(0, resets=len(self.scheduler.events))

    def _log_window(self, logger: RunLogger, metrics: dict, window) -> tuple:
        now, c = time.perf_counter(), self.counters
        start, steps0, updates0 = window
        elapsed = max(now - start, 1e-9)
        rates = {"env_steps_per_s": (c["env_steps"] - steps0) / elapsed,
                 "updates_per_s": (c["updates"] - updates0) / elapsed}
        logger.scalars("train", metrics, c["env_steps"])
        logger.scalars("time", rates, c["env_steps"])
        logger.progress(0, ups=rates["updates_per_s"])
        return now, c["env_steps"], c["updates"]

    def _summary(self) -> dict:
        return run_summary(self.cfg, self.counters, self.eval_history, self.scheduler.events)
