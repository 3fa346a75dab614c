"""Config validation: every bad value is reported, with its key and what is allowed, before any
environment, network or file is created. Here: the meaning of each key (ranges, choices, how keys
relate). runner/validate_keys.py: unknown keys, types against the defaults, inf and nan;
runner/validate_plasticity.py: presets, rules and regularizers; runner/validate_files.py: the
dataset and the agent.pt a config names."""
from __future__ import annotations

import torch

from agents import AGENTS, TRAINER_KEYS
from agents.hparams import RULES, hparam_problems
from agents.acceleration import COMPILE_MODES
from envs import EnvIdError, check_env_id
from runner.members import validate_members
from runner.validate_common import (Errors, brief, check, finite, int_ge, is_bool, is_int, num_in)
from runner.validate_continual import validate_continual
from runner.validate_files import validate_files
from runner.validate_keys import (allowed_top_level, base_defaults, check_finite, check_types,
                                  check_unknown)
from runner.validate_plasticity import validate_plasticity

DEVICES = ("auto", "cpu", "cuda")
SECTIONS = ("agent", "env", "plasticity", "train", "offline", "diagnostics", "logger")
_unit = num_in(0, 1, low_open=True)  # (0, 1]
# Trainer keys some agent configs carry (TRAINER_KEYS beyond the common five)
TRAINER_EXTRAS = (
    ("prioritized", is_bool, "true or false (prioritized replay)"),
    ("image_size", lambda v: v is None or (is_int(v) and v >= 16), "null or an integer >= 16"),
    ("grayscale", is_bool, "true or false"),
    ("learning_starts", int_ge(1), "an integer >= 1"),
)


class ConfigError(ValueError):
    """One or more config values are invalid; the message lists each with its key."""


def validate_config(cfg: dict) -> None:
    """Raise ConfigError listing every invalid key of a resolved config (a plain dict)."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"invalid config: {brief(cfg)} is not a mapping")
    e = Errors()
    check_finite(e, cfg)  # first: an inf or nan is reported as such, whatever the key
    cfg = _sections(e, cfg)
    _validate_keys(e, cfg)
    _validate_top_level(e, cfg)
    _validate_agent(e, cfg)
    _validate_env(e, cfg)
    validate_plasticity(e, cfg.get("plasticity"))
    _validate_train(e, cfg)
    _validate_diagnostics(e, cfg)
    _validate_offline(e, cfg)
    _validate_logger(e, cfg)
    validate_continual(e, cfg)
    validate_members(e, cfg)
    defaults = base_defaults()
    check_types(e, "", cfg, defaults[""])
    for section in ("train", "offline", "diagnostics", "logger"):
        check_types(e, section, cfg.get(section, {}), defaults.get(section, {}))
    name = cfg["agent"].get("name")
    if isinstance(name, str) and name in AGENTS:
        check_types(e, "agent", cfg["agent"], AGENTS[name][1])
    validate_files(e, cfg)
    if e:
        raise ConfigError(e.text())


def _sections(e: Errors, cfg: dict) -> dict:
    """`cfg` with each section that is not a mapping reported and replaced by {} (for the rest;
    validate_plasticity reports its own)."""
    out = dict(cfg)
    for name in SECTIONS[:2] + SECTIONS[3:]:
        value = cfg.get(name, {})
        if not isinstance(value, dict):
            e.bad(name, value, "a mapping")
            value = {}
        out[name] = value
    return out


def _validate_keys(e: Errors, cfg: dict) -> None:
    """Unknown keys in every section (a `+key=...` that nothing would read included)."""
    defaults = base_defaults()
    check_unknown(e, "", cfg, allowed_top_level())
    for section in ("train", "offline", "diagnostics", "env", "logger"):
        check_unknown(e, section, cfg[section], defaults.get(section, {}))
    name = cfg["agent"].get("name")
    if isinstance(name, str) and name in AGENTS:
        check_unknown(e, "agent", cfg["agent"], set(AGENTS[name][1]) | TRAINER_KEYS, f" for agent '{name}'")


def _validate_top_level(e: Errors, cfg: dict) -> None:
    check(e, cfg, "seed", is_int, "an integer")
    check(e, cfg, "device", lambda v: v in DEVICES, f"one of {list(DEVICES)}")
    if cfg.get("device") == "cuda" and not torch.cuda.is_available():
        e.add("device", "device = 'cuda': no CUDA device is available here; use device=cpu or device=auto")
    e.checked.update({"threads", "resume"})
    threads = cfg.get("threads")  # absent in configs saved before the key existed: the default
    if threads is not None and not int_ge(1)(threads):
        e.bad("threads", threads, "null (torch's default) or an integer >= 1 (torch CPU threads of this run)")
    resume = cfg.get("resume")
    if resume is not None and not (isinstance(resume, str) and resume):
        e.bad("resume", resume, "null, the path of a run directory, or auto (this run's own "
                                "directory if it holds a checkpoint)")


def _validate_agent(e: Errors, cfg: dict) -> None:
    """The trainer's keys here; the agent's hyperparameters with the rules its constructor uses
    (agents/hparams.py, and the agent's own `hparam_rules`)."""
    agent = cfg["agent"]
    check(e, cfg, "agent.name", lambda v: v in AGENTS, f"one of {sorted(AGENTS)}")
    check(e, cfg, "agent.replay_ratio", int_ge(1), "an integer >= 1 (updates per env step)")
    check(e, cfg, "agent.batch_size", int_ge(1), "an integer >= 1")
    check(e, cfg, "agent.buffer_size", int_ge(1), "an integer >= 1")
    check(e, cfg, "agent.n_step", int_ge(1), "an integer >= 1")
    check(e, cfg, "agent.gamma", _unit, "a number in (0, 1]")
    name = agent.get("name")
    cls, own = AGENTS[name] if isinstance(name, str) and name in AGENTS else (None, {})
    for key in ("lr", "hidden_dims", "activation"):  # every agent has these
        if key not in agent:
            e.add(f"agent.{key}", f"agent.{key}: missing (expected {RULES[key][1]})")
    values = {k: agent[k] for k in agent if k in own or k in ("lr", "hidden_dims", "activation")}
    for key, message in hparam_problems(values, cls.hparam_rules if cls else None):
        e.add(f"agent.{key}", f"agent.{message}")
    e.checked.update(f"agent.{k}" for k in values)
    for key, ok, allowed in TRAINER_EXTRAS:
        if key in agent:
            check(e, cfg, f"agent.{key}", ok, allowed)
    if agent.get("prioritized") is True and cls is not None:
        if not cls.gives_priorities:
            e.add("agent.prioritized", f"agent.prioritized = true: {cls.__name__} gives no priorities "
                                       f"for prioritized replay (agents that do: "
                                       f"{sorted(n for n, (c, _) in AGENTS.items() if c.gives_priorities)})")
        elif cfg.get("offline", {}).get("dataset"):
            e.add("agent.prioritized", "agent.prioritized = true with offline.dataset: prioritized "
                                       "replay over an offline dataset is not supported; set "
                                       "agent.prioritized=false (uniform sampling of both parts)")
    if "compile" in own:
        _validate_compile(e, cfg)
    bs, size = agent.get("batch_size"), agent.get("buffer_size")
    if is_int(bs) and is_int(size) and bs > size:
        e.add("agent.batch_size", f"agent.batch_size = {bs}: must not exceed agent.buffer_size = {size}")


def _validate_compile(e: Errors, cfg: dict) -> None:
    check(e, cfg, "agent.compile", lambda v: v in COMPILE_MODES or isinstance(v, bool),
          f"one of {list(COMPILE_MODES)} (how updates run; cudagraphs needs CUDA)")
    device = cfg.get("device", "auto")
    if (cfg["agent"].get("compile") == "cudagraphs" and device in DEVICES
            and resolve_device(device).type != "cuda"):
        e.add("agent.compile", f"agent.compile = 'cudagraphs': needs a CUDA device, and this run's "
                               f"device is {device!r} ({resolve_device(device)}); use agent.compile=compile "
                               "or none on a CPU")


def _validate_env(e: Errors, cfg: dict) -> None:
    from agents import agents_taking
    env = cfg["env"]
    check(e, cfg, "env.id", lambda v: isinstance(v, str), "a string like 'dmc:cheetah-run'")
    check(e, cfg, "env.name", lambda v: isinstance(v, str) and v, "a non-empty string (names the run dir)")
    kind = None
    if isinstance(env.get("id"), str):
        try:
            kind = check_env_id(env["id"]).kind
        except EnvIdError as err:
            e.add("env.id", f"env.id: {err}")
    repeat, pixels = env.get("action_repeat"), env.get("pixels", False)
    if not (repeat is None or int_ge(1)(repeat)):
        e.add("env.action_repeat", f"env.action_repeat = {brief(repeat)}: must be an integer >= 1 (or "
                                   "null: 1 from states, the PlaNet value of the domain from pixels)")
    elif kind == "atari" and repeat not in (None, 1):
        e.add("env.action_repeat", f"env.action_repeat = {brief(repeat)}: Atari envs skip 4 frames "
                                   "themselves; use null")
    if not is_bool(pixels) or (pixels and kind == "gym"):
        e.add("env.pixels", f"env.pixels = {brief(pixels)}: must be true (dmc ids only) or false")
    stack = env.get("frame_stack")
    if not (stack is None or int_ge(1)(stack)):
        e.bad("env.frame_stack", stack, "null (3 for DMC pixels, 4 for Atari) or an integer >= 1")
    if not is_bool(pixels):
        return  # what depends on env.pixels waits until it is true or false
    gray = env.get("grayscale", False)
    if not is_bool(gray) or (gray and pixels is not True):
        e.bad("env.grayscale", gray, "true or false (true only with env.pixels=true)")
    size = env.get("image_size")
    if size is not None and not (int_ge(16)(size) and pixels is True):
        e.bad("env.image_size", size, "null (84) or an integer >= 16, with env.pixels=true")
    name = cfg["agent"].get("name")
    image_env = pixels is True or kind == "atari"
    wanted = "pixels" if image_env else "vector"
    if kind is not None and isinstance(name, str) and name in AGENTS and AGENTS[name][0].observation_kind != wanted:
        e.add("agent.name", f"agent.name = {name!r} does not fit env {env['id']!r} "
                            f"({'pixels' if image_env else 'states'}): use one of {agents_taking(wanted)}"
                            + ("" if image_env or kind != "dmc" else " or set env.pixels=true"))


def _validate_train(e: Errors, cfg: dict) -> None:
    check(e, cfg, "train.total_steps", int_ge(1), "an integer >= 1")
    check(e, cfg, "train.learning_starts", int_ge(1), "an integer >= 1 (env steps before updates)")
    check(e, cfg, "train.eval_every", int_ge(0), "an integer >= 0 (0: only at the end)")
    check(e, cfg, "train.eval_episodes", int_ge(1), "an integer >= 1")
    check(e, cfg, "train.log_every", int_ge(1), "an integer >= 1")
    check(e, cfg, "train.checkpoint_every", int_ge(0), "an integer >= 0 (0: final only)")
    check(e, cfg, "train.priming_updates", int_ge(0), "an integer >= 0 (0: no heavy priming)")
    train = cfg["train"]
    for key, ok, allowed in (("video", is_bool, "true or false"), ("progress", is_bool, "true or false"),
                             ("keep_checkpoints", int_ge(1), "an integer >= 1 (checkpoints kept)")):
        if key in train:  # absent in configs saved before the key existed: the default
            check(e, cfg, f"train.{key}", ok, allowed)
    if "on_nonfinite" in train:
        from runner.nonfinite import ON_NONFINITE
        check(e, cfg, "train.on_nonfinite", lambda v: v in ON_NONFINITE, f"one of {list(ON_NONFINITE)}")
    total, starts = train.get("total_steps"), train.get("learning_starts")
    pretrain = (cfg.get("offline") or {}).get("pretrain_updates")
    if is_int(total) and is_int(starts) and starts >= total and not (is_int(pretrain) and pretrain > 0):
        e.add("train.learning_starts",
              f"train.learning_starts = {starts}: not below train.total_steps = {total}, so the run "
              f"would make no gradient update (an env config sets its own: dmc/* 10000); lower it "
              f"(e.g. train.learning_starts={max(1, total // 10)}) or raise train.total_steps")


def _validate_diagnostics(e: Errors, cfg: dict) -> None:
    check(e, cfg, "diagnostics.every", int_ge(0), "an integer >= 0 (gradient updates between measurements; 0: off)")
    check(e, cfg, "diagnostics.tau", lambda v: finite(v) and v >= 0, "a number >= 0")
    check(e, cfg, "diagnostics.srank_delta", num_in(0, 1, high_open=True), "a number in [0, 1)")
    groups = cfg["diagnostics"].get("groups")
    e.checked.add("diagnostics.groups")
    ok = groups is None or (isinstance(groups, list) and all(
        isinstance(g, str) or (isinstance(g, list) and g and all(isinstance(x, str) for x in g))
        for g in groups))
    if not ok:
        e.bad("diagnostics.groups", groups, "null (each network) or a list of patterns or lists of patterns")


def _validate_offline(e: Errors, cfg: dict) -> None:
    from replay.datasets import REWARD_NORMALIZATIONS
    off = cfg["offline"]
    check(e, cfg, "offline.dataset", lambda v: v is None or (isinstance(v, str) and v),
          "null or a Minari dataset id / local path")
    check(e, cfg, "offline.fraction", num_in(0, 1), "a number in [0, 1] (share of each batch from the dataset)")
    check(e, cfg, "offline.pretrain_updates", int_ge(0), "an integer >= 0")
    check(e, cfg, "offline.init_from", lambda v: v is None or (isinstance(v, str) and v),
          "null or the path of an agent.pt (or its run directory)")
    check(e, cfg, "offline.reward_scale", finite, "a finite number")
    check(e, cfg, "offline.reward_shift", finite, "a finite number")
    if is_int(off.get("pretrain_updates")) and off["pretrain_updates"] > 0 and not off.get("dataset"):
        e.add("offline.pretrain_updates", f"offline.pretrain_updates = {off['pretrain_updates']}: needs "
                                          "offline.dataset (pre-training runs on the dataset alone)")
    norm = off.get("reward_normalization", "none")  # absent in configs saved before the key existed
    e.checked.add("offline.reward_normalization")
    if not isinstance(norm, str) or norm not in REWARD_NORMALIZATIONS:
        e.bad("offline.reward_normalization", norm, f"one of {list(REWARD_NORMALIZATIONS)} (returns_range: "
                                                    "r * 1000 / (max - min episode return of the dataset))")
    elif norm != "none" and not off.get("dataset"):
        e.add("offline.reward_normalization", f"offline.reward_normalization = {norm!r}: needs offline.dataset "
                                              "(the scale comes from its episode returns)")


def _validate_logger(e: Errors, cfg: dict) -> None:
    """Each key may be absent (configs saved before the section existed): its default."""
    from runner.wandb_logger import MODES, wandb_missing
    log = cfg["logger"]
    e.checked.update(f"logger.{k}" for k in ("wandb", "wandb_project", "wandb_entity", "wandb_group",
                                              "wandb_mode"))
    if "wandb" in log:
        check(e, cfg, "logger.wandb", is_bool, "true or false (also log to Weights & Biases)")
    if "wandb_project" in log:
        check(e, cfg, "logger.wandb_project", lambda v: isinstance(v, str) and v, "a non-empty string")
    for key in ("wandb_entity", "wandb_group"):
        if key in log:
            check(e, cfg, f"logger.{key}", lambda v: v is None or (isinstance(v, str) and v),
                  "null or a non-empty string")
    if "wandb_mode" in log:
        check(e, cfg, "logger.wandb_mode", lambda v: v is None or v in MODES,
              f"null ($WANDB_MODE, else online) or one of {list(MODES)}")
    if log.get("wandb") is True and log.get("wandb_mode") != "disabled":
        problem = wandb_missing()
        if problem:
            e.add("logger.wandb", problem)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
