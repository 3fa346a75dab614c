"""Continual runs (`env.sequence`, README "Continual RL"): the task changes every `every` env
steps, cycling through `tasks` tasks (envs/sequence.py). At a switch step, after that step's
updates, evaluation and env-step interventions, the trainer

    1. ends the running episode as truncated in the replay (n-step returns never cross tasks),
    2. puts both envs under the next task,
    3. fires the scheduler's `task_switch` rules (a reset, S&P or H&T copy at every switch),
    4. runs the trainability probe (plasticity/probe.py) when `diagnostics.probe_steps > 0`,
    5. clears the replay under `replay: clear`,

then starts the next episode. Switch steps depend on the env step only, and the task index follows the switches made
(counters["switches"], in checkpoints): a resumed run switches at the same steps, and an
extended run goes on with the next task."""
from __future__ import annotations

from plasticity.probe import trainability_probe
from runner.evaluate import evaluate, summarize
from runner.seeding import derived_seed
from runner.side_batch import PROBE_STREAM, side_batch

REPLAY_AT_SWITCH = ("keep", "clear")


class TaskSwitches:
    def __init__(self, sequence: dict, total_steps: int):
        self.every, self.tasks = int(sequence["every"]), int(sequence["tasks"])
        self.replay = sequence.get("replay", "keep")
        self.eval_all = bool(sequence.get("eval_all", False))
        self.total = int(total_steps)

    def due(self, env_steps: int) -> bool:
        """Whether the task changes after step `env_steps` (never at the run's last step)."""
        return env_steps % self.every == 0 and 0 < env_steps < self.total

    def steps(self) -> list[int]:
        """Every switch step of the run."""
        return list(range(self.every, self.total, self.every))


def set_task(envs, index: int) -> None:
    for env in envs:
        env.set_task(index)


def switch_task(trainer, logger, ended: bool) -> bool:
    """Steps 1-5 above on `trainer` (runner/trainer.py) at a switch step; the probe measures the
    trained network before the switch's interventions. True: the episode ended."""
    c, switches = trainer.counters, trainer.switches
    if not ended:
        trainer.buffer.storage.truncate_newest()
    diag = trainer.cfg["diagnostics"]
    if diag.get("probe_steps", 0) and len(trainer.buffer):
        logger.scalars(f"probe/{diag.get('probe_module', 'critic')}", probe(trainer), c["env_steps"])
    c["switches"] = c.get("switches", 0) + 1
    index = c["switches"] % switches.tasks
    set_task((trainer.env, trainer.eval_env), index)
    events = trainer.scheduler.at_task_switch(c["switches"], c["updates"], c["env_steps"])
    trainer._log_events(logger, events)
    if switches.replay == "clear":
        trainer.buffer.storage.clear()
    logger.scalars("continual", {"task": index}, c["env_steps"])
    return True


def probe(trainer) -> dict:
    """The trainability probe on a batch drawn by its own seeded sampler (the run's sampling
    stream is left alone)."""
    diag, c = trainer.cfg["diagnostics"], trainer.counters
    seed = derived_seed(trainer.cfg["seed"], PROBE_STREAM, c["env_steps"])
    batch = side_batch(trainer, seed, trainer.cfg["agent"]["batch_size"])
    return trainability_probe(trainer.agent, diag.get("probe_module", "critic"), batch,
                              diag["probe_steps"], diag.get("probe_lr", 1e-3), seed)


def every_task_returns(trainer, round_index: int) -> list[float]:
    """The mean evaluation return on each task of the sequence (`eval_all`), the eval env put
    back under the current task after: a row of the forgetting matrix."""
    episodes, env = trainer.cfg["train"]["eval_episodes"], trainer.eval_env
    current = env.task_index
    rows = []
    for task in range(trainer.switches.tasks):
        env.set_task(task)
        returns = evaluate(trainer.agent, env, episodes, trainer.cfg["seed"], round_index)
        rows.append(summarize(returns)["return_mean"])
    env.set_task(current)
    return rows
