"""One evaluation round of a run (the trainer's `_evaluate`): the returns of `train.eval_episodes`
greedy episodes, the human-normalised score (Atari), every task's return (continual RL, if asked),
an evaluation video (if asked), recorded in the run's history and logged."""
from __future__ import annotations

from runner.continual import every_task_returns
from runner.evaluate import evaluate, summarize
from runner.seeding import derived_seed
from runner.video import record_eval_video


def evaluation_round(trainer, logger) -> dict:
    """Evaluate `trainer`'s agent now; append the result to its `eval_history` and return it."""
    t, step = trainer.cfg["train"], trainer.counters["env_steps"]
    episodes = t["eval_episodes"]
    returns = evaluate(trainer.agent, trainer.eval_env, episodes, trainer.cfg["seed"],
                       len(trainer.eval_history),
                       on_episode=lambda k: logger.status(f"evaluating {k}/{episodes} episodes"))
    logger.status(None)
    result = {"env_steps": step, **summarize(returns)}
    scalars = {"return": result["return_mean"], "return_std": result["return_std"]}
    if trainer.normalize_score is not None:  # Atari: (score - random) / (human - random)
        result["human_normalized"] = scalars["human_normalized"] = \
            trainer.normalize_score(result["return_mean"])
    if trainer.switches is not None:  # continual: which task, and every task if asked
        result["task"] = trainer.eval_env.task_index
        if trainer.switches.eval_all:
            result["per_task"] = every_task_returns(trainer, len(trainer.eval_history))
            scalars.update({f"task_{j}": r for j, r in enumerate(result["per_task"])})
    trainer.eval_history.append(result)
    logger.scalars("eval", scalars, step)
    if t.get("video", False):  # one more greedy episode, rendered (README "Evaluation videos")
        seed = derived_seed(trainer.cfg["seed"], 2, len(trainer.eval_history))
        path = record_eval_video(trainer.agent, trainer.eval_env, seed, trainer.run_dir / "videos",
                                 logger.writer, step)
        logger.video("eval/video", path, step)
    logger.progress(0, eval=result["return_mean"])
    return result
