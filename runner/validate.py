"""Config validation: every bad value is reported, with its key and what is allowed,
before any environment, network or file is created."""
from __future__ import annotations

import math

import torch

from agents import AGENTS
from agents.encoders import CONV_PADDINGS
from agents.iql import ACTOR_LR_SCHEDULES
from agents.init import AGENT_INITS
from agents.networks import LOG_STD_FORMS
from agents.acceleration import COMPILE_MODES
from agents.networks import ACTIVATIONS
from envs import EnvIdError, check_env_id

DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """One or more config values are invalid; the message lists each with its key."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    return _is_num(v) and math.isfinite(v)


def _check(errors, cfg, key, ok, allowed):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            errors.append(f"{key}: missing (expected {allowed})")
            return
        node = node[part]
    if not ok(node):
        errors.append(f"{key} = {node!r}: must be {allowed}")


def validate_config(cfg: dict) -> None:
    """Raise ConfigError listing every invalid key of a resolved config (a plain dict)."""
    e: list[str] = []
    int_ge = lambda lo: (lambda v: _is_int(v) and v >= lo)  # noqa: E731
    _check(e, cfg, "seed", _is_int, "an integer")
    _check(e, cfg, "device", lambda v: v in DEVICES, f"one of {list(DEVICES)}")
    if cfg.get("device") == "cuda" and not torch.cuda.is_available():
        e.append("device = 'cuda': no CUDA device is available here; use device=cpu or device=auto")
    threads = cfg.get("threads")  # absent in configs saved before the key existed: the default
    if threads is not None and not int_ge(1)(threads):
        e.append(f"threads = {threads!r}: must be null (torch's default) or an integer >= 1 "
                 "(torch CPU threads of this run)")

    agent = cfg.get("agent", {})
    _check(e, cfg, "agent.name", lambda v: v in AGENTS, f"one of {sorted(AGENTS)}")
    if agent.get("name") in AGENTS:
        _, defaults = AGENTS[agent["name"]]
        from agents import TRAINER_KEYS
        unknown = sorted(set(agent) - set(defaults) - TRAINER_KEYS)
        if unknown:
            e.append(f"agent: unknown keys {unknown} for agent '{agent['name']}'; "
                     f"allowed: {sorted(set(defaults) | TRAINER_KEYS)}")
    _check(e, cfg, "agent.replay_ratio", int_ge(1), "an integer >= 1 (updates per env step)")
    _check(e, cfg, "agent.batch_size", int_ge(1), "an integer >= 1")
    _check(e, cfg, "agent.buffer_size", int_ge(1), "an integer >= 1")
    _check(e, cfg, "agent.n_step", int_ge(1), "an integer >= 1")
    _check(e, cfg, "agent.gamma", lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]")
    _check(e, cfg, "agent.lr", lambda v: _finite(v) and v > 0, "a finite number > 0")
    _check(e, cfg, "agent.hidden_dims",
           lambda v: isinstance(v, list) and len(v) > 0 and all(_is_int(w) and w > 0 for w in v),
           "a non-empty list of positive integers")
    _check(e, cfg, "agent.activation", lambda v: v in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}")
    # Keys only some agents have: checked where the named agent's defaults define them.
    own = AGENTS[agent["name"]][1] if agent.get("name") in AGENTS else {}
    positive_ints = lambda v: isinstance(v, list) and all(_is_int(w) and w > 0 for w in v)  # noqa: E731
    for key, ok, allowed in (
            ("tau", lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]"),
            ("feature_dim", int_ge(1), "an integer >= 1"),
            ("augment_pad", int_ge(0), "an integer >= 0 (0: no random shift)"),
            ("channels", positive_ints, "a list of positive integers (conv filters per layer)"),
            ("strides", positive_ints, "a list of positive integers (one per conv layer)"),
            ("epsilon_decay_steps", int_ge(1), "an integer >= 1"),
            ("epsilon_train", lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
            ("epsilon_eval", lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
            ("target_update_every", int_ge(1), "an integer >= 1 (updates between target copies)"),
            ("num_critics", int_ge(1), "an integer >= 1"),
            ("init_temperature", lambda v: _finite(v) and v > 0, "a finite number > 0"),
            ("actor_update_every", int_ge(1), "an integer >= 1 (critic updates per actor update)"),
            ("actor_q", lambda v: v in ("min", "mean"), "one of ['min', 'mean']"),
            ("expectile", lambda v: _is_num(v) and 0 < v < 1, "a number in (0, 1)"),
            ("temperature", lambda v: _is_num(v) and v >= 0, "a number >= 0 (AWR inverse temperature)"),
            ("max_weight", lambda v: _is_num(v) and v > 0, "a number > 0"),
            ("dropout", lambda v: v is None or (_is_num(v) and 0 <= v < 1), "null or a number in [0, 1)"),
            ("precision", lambda v: v in ("fp32", "bf16"), "one of ['fp32', 'bf16'] (bf16: bfloat16 autocast)"),
            ("channels_last", lambda v: isinstance(v, bool), "true or false (NHWC conv memory format)"),
            ("init", lambda v: v in AGENT_INITS, f"one of {list(AGENT_INITS)} (agents/init.py)"),
            ("log_std_form", lambda v: v in LOG_STD_FORMS, f"one of {list(LOG_STD_FORMS)}"),
            ("log_std_bounds", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_finite, v))
             and v[0] < v[1], "[min, max], finite numbers with min < max"),
            ("target_entropy", lambda v: v is None or _finite(v), "null or a finite number"),
            ("target_entropy_per_action", _finite, "a finite number (H_target = it * |A|; jaxrl SAC -0.5)"),
            ("target_update_every", int_ge(1), "an integer >= 1 (updates between target updates)"),
            ("q_views", int_ge(1), "an integer >= 1 (DrQ's M: augmented views of s)"),
            ("target_views", int_ge(1), "an integer >= 1 (DrQ's K: augmented views of s')"),
            ("conv_padding", lambda v: v in CONV_PADDINGS, f"one of {list(CONV_PADDINGS)}"),
            ("actor_lr_schedule", lambda v: v in ACTOR_LR_SCHEDULES,
             f"one of {list(ACTOR_LR_SCHEDULES)} (cosine: decay over agent.actor_lr_decay_steps)"),
            ("actor_lr_decay_steps", lambda v: v is None or (_is_int(v) and v >= 0),
             "null or an integer >= 0 (actor updates of the cosine decay; null or 0: constant lr)"),
            ("layer_norm", lambda v: isinstance(v, bool), "true or false"),
            ("actor_layer_norm", lambda v: isinstance(v, bool), "true or false"),
            ("backup_entropy", lambda v: isinstance(v, bool), "true or false")):
        if key in own:
            _check(e, cfg, f"agent.{key}", ok, allowed)
    if "compile" in own:
        _check(e, cfg, "agent.compile", lambda v: v in COMPILE_MODES or isinstance(v, bool),
               f"one of {list(COMPILE_MODES)} (how updates run; cudagraphs needs CUDA)")
        device = cfg.get("device", "auto")
        if (agent.get("compile") == "cudagraphs" and device in DEVICES
                and resolve_device(device).type != "cuda"):
            e.append(f"agent.compile = 'cudagraphs': needs a CUDA device, and this run's device is "
                     f"{device!r} ({resolve_device(device)}); use agent.compile=compile or none on a CPU")
    m, n = agent.get("num_target_critics"), agent.get("num_critics")
    if "num_target_critics" in own and m is not None and not (_is_int(m) and _is_int(n) and 1 <= m <= n):
        e.append(f"agent.num_target_critics = {m!r}: must be null or an integer in [1, num_critics={n}]")
    bs, size = agent.get("batch_size"), agent.get("buffer_size")
    if _is_int(bs) and _is_int(size) and bs > size:
        e.append(f"agent.batch_size = {bs}: must not exceed agent.buffer_size = {size}")

    _validate_env(e, cfg)

    _validate_plasticity(e, cfg.get("plasticity"))
    _check(e, cfg, "train.total_steps", int_ge(1), "an integer >= 1")
    _check(e, cfg, "train.learning_starts", int_ge(1), "an integer >= 1 (env steps before updates)")
    _check(e, cfg, "train.eval_every", int_ge(0), "an integer >= 0 (0: only at the end)")
    _check(e, cfg, "train.eval_episodes", int_ge(1), "an integer >= 1")
    _check(e, cfg, "train.log_every", int_ge(1), "an integer >= 1")
    _check(e, cfg, "train.checkpoint_every", int_ge(0), "an integer >= 0 (0: final only)")
    _check(e, cfg, "train.priming_updates", int_ge(0), "an integer >= 0 (0: no heavy priming)")
    if not isinstance(cfg.get("train", {}).get("video", False), bool):
        e.append(f"train.video = {cfg['train']['video']!r}: must be true or false")
    _validate_diagnostics(e, cfg)
    _validate_offline(e, cfg)
    if e:
        raise ConfigError("invalid config:\n  " + "\n  ".join(e))


def _validate_env(e: list[str], cfg: dict) -> None:
    from agents import PIXEL_AGENTS
    env = cfg.get("env", {})
    _check(e, cfg, "env.id", lambda v: isinstance(v, str), "a string like 'dmc:cheetah-run'")
    kind = None
    if isinstance(env.get("id"), str):
        try:
            kind = check_env_id(env["id"]).kind
        except EnvIdError as err:
            e.append(f"env.id: {err}")
    repeat, pixels = env.get("action_repeat"), env.get("pixels", False)
    if not (repeat is None or (_is_int(repeat) and repeat >= 1)):
        e.append(f"env.action_repeat = {repeat!r}: must be an integer >= 1 (or null: 1 from states, "
                 "the PlaNet value of the domain from pixels)")
    elif kind == "atari" and repeat not in (None, 1):
        e.append(f"env.action_repeat = {repeat!r}: Atari envs skip 4 frames themselves; use null")
    if not isinstance(pixels, bool) or (pixels and kind == "gym"):
        e.append(f"env.pixels = {pixels!r}: must be true (dmc ids only) or false")
    stack = env.get("frame_stack")
    if not (stack is None or (_is_int(stack) and stack >= 1)):
        e.append(f"env.frame_stack = {stack!r}: must be null (3 for DMC pixels, 4 for Atari) or an integer >= 1")
    if not isinstance(env.get("grayscale", False), bool) or (env.get("grayscale") and pixels is not True):
        e.append(f"env.grayscale = {env.get('grayscale')!r}: must be true or false (true only with env.pixels=true)")
    size = env.get("image_size")
    if size is not None and not (_is_int(size) and size >= 16 and pixels is True):
        e.append(f"env.image_size = {size!r}: must be null (84) or an integer >= 16, with env.pixels=true")
    name = cfg.get("agent", {}).get("name")
    image_env = pixels is True or kind == "atari"
    if kind is not None and name in AGENTS and (name in PIXEL_AGENTS) != image_env:
        pixel_agents, state_agents = sorted(PIXEL_AGENTS), sorted(set(AGENTS) - PIXEL_AGENTS)
        e.append(f"agent.name = {name!r} does not fit env {env['id']!r} "
                 f"({'pixels' if image_env else 'states'}): use one of "
                 f"{pixel_agents if image_env else state_agents}"
                 + ("" if image_env or kind != "dmc" else " or set env.pixels=true"))


def _validate_plasticity(e: list[str], plasticity) -> None:
    from plasticity.interventions import INTERVENTIONS
    from plasticity.scheduler import UNITS
    if not isinstance(plasticity, dict) or not isinstance(plasticity.get("rules"), list):
        e.append("plasticity.rules: missing (expected a list of rules; plasticity=none has [])")
        return
    for i, rule in enumerate(plasticity["rules"]):
        key = f"plasticity.rules[{i}]"
        if not isinstance(rule, dict):
            e.append(f"{key} = {rule!r}: must be a mapping")
            continue
        if rule.get("intervention") not in INTERVENTIONS:
            e.append(f"{key}.intervention = {rule.get('intervention')!r}: must be one of {sorted(INTERVENTIONS)}")
        if rule.get("unit") not in UNITS:
            e.append(f"{key}.unit = {rule.get('unit')!r}: must be one of {list(UNITS)}")
        if not (_is_int(rule.get("every")) and rule["every"] >= 1):
            e.append(f"{key}.every = {rule.get('every')!r}: must be an integer >= 1")
        _check_groups(e, key, rule.get("groups"))
        for opt in ("start", "stop_after", "max_count", "stop_after_env_steps", "horizon"):
            v = rule.get(opt)
            if v is not None and not (_is_int(v) and v >= 0):
                e.append(f"{key}.{opt} = {v!r}: must be null or an integer >= 0")
    from plasticity.regen import REGULARIZERS
    regularizers = plasticity.get("regularizers", [])
    if not isinstance(regularizers, list):
        e.append(f"plasticity.regularizers = {regularizers!r}: must be a list (or absent)")
        return
    for i, reg in enumerate(regularizers):
        key = f"plasticity.regularizers[{i}]"
        if not isinstance(reg, dict):
            e.append(f"{key} = {reg!r}: must be a mapping")
            continue
        if reg.get("kind") not in REGULARIZERS:
            e.append(f"{key}.kind = {reg.get('kind')!r}: must be one of {sorted(REGULARIZERS)}")
        if not (_is_num(reg.get("coef")) and reg["coef"] >= 0):
            e.append(f"{key}.coef = {reg.get('coef')!r}: must be a number >= 0")
        _check_groups(e, key, reg.get("groups"))


def _check_groups(e: list[str], key: str, groups) -> None:
    if not (isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups)):
        e.append(f"{key}.groups = {groups!r}: must be a non-empty list of parameter-name patterns")


def _validate_diagnostics(e: list[str], cfg: dict) -> None:
    _check(e, cfg, "diagnostics.every", lambda v: _is_int(v) and v >= 0,
           "an integer >= 0 (gradient updates between measurements; 0: off)")
    _check(e, cfg, "diagnostics.tau", lambda v: _is_num(v) and v >= 0, "a number >= 0")
    _check(e, cfg, "diagnostics.srank_delta", lambda v: _is_num(v) and 0 <= v < 1, "a number in [0, 1)")
    groups = cfg.get("diagnostics", {}).get("groups")
    ok = groups is None or (isinstance(groups, list) and all(
        isinstance(g, str) or (isinstance(g, list) and g and all(isinstance(x, str) for x in g))
        for g in groups))
    if not ok:
        e.append(f"diagnostics.groups = {groups!r}: must be null (each network) or a list of "
                 "patterns or lists of patterns")


def _validate_offline(e: list[str], cfg: dict) -> None:
    off = cfg.get("offline", {})
    _check(e, cfg, "offline.dataset", lambda v: v is None or (isinstance(v, str) and v),
           "null or a Minari dataset id / local path")
    _check(e, cfg, "offline.fraction", lambda v: _is_num(v) and 0 <= v <= 1,
           "a number in [0, 1] (share of each batch from the dataset)")
    _check(e, cfg, "offline.pretrain_updates", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _check(e, cfg, "offline.init_from", lambda v: v is None or isinstance(v, str),
           "null or the path of an agent.pt (or its run directory)")
    _check(e, cfg, "offline.reward_scale", _finite, "a finite number")
    _check(e, cfg, "offline.reward_shift", _finite, "a finite number")
    if _is_int(off.get("pretrain_updates")) and off["pretrain_updates"] > 0 and not off.get("dataset"):
        e.append(f"offline.pretrain_updates = {off['pretrain_updates']}: needs offline.dataset "
                 "(pre-training runs on the dataset alone)")
    from replay.datasets import REWARD_NORMALIZATIONS
    norm = off.get("reward_normalization", "none")  # absent in configs saved before the key existed
    if norm not in REWARD_NORMALIZATIONS:
        e.append(f"offline.reward_normalization = {norm!r}: must be one of {list(REWARD_NORMALIZATIONS)} "
                 "(returns_range: r * 1000 / (max - min episode return of the dataset))")
    elif norm != "none" and not off.get("dataset"):
        e.append(f"offline.reward_normalization = {norm!r}: needs offline.dataset (the scale comes "
                 "from its episode returns)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
