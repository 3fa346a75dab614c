"""Agent hyperparameters: one rule per name, the single source of their checks.

`Agent._set_hparams` checks an agent's merged constructor arguments with these rules (a library
user gets a ValueError), and config validation (runner/validate.py) checks `agent.*` with the same
ones before anything is built, so a rule is written once. A rule applies to every agent that has
the hyperparameter; an agent adds rules of its own in its `hparam_rules` class attribute (IQL's
actor-lr schedule). Cross-key rules (`cross_problems`) come after the per-key ones.
"""
from __future__ import annotations

from agents.encoders import CONV_PADDINGS, PRECISIONS
from agents.init import AGENT_INITS
from agents.networks import ACTIVATIONS, LOG_STD_FORMS
from agents.sam import OPTIMIZERS, SAM_HEAD_GRADIENTS
from runner.validate_common import brief, finite, int_ge, is_bool, is_int, num_in, passes


def positive_ints(value) -> bool:
    """A non-empty list (or tuple) of integers >= 1."""
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(is_int(w) and w > 0 for w in value)


_unit = num_in(0, 1, low_open=True)  # (0, 1]
_positive = lambda v: finite(v) and v > 0  # noqa: E731
_non_negative = lambda v: finite(v) and v >= 0  # noqa: E731

# name -> (test, what is allowed)
RULES: dict[str, tuple] = {
    "lr": (_positive, "a finite number > 0"),
    "hidden_dims": (positive_ints, "a non-empty list of positive integers"),
    "activation": (lambda v: v in ACTIVATIONS, f"one of {sorted(ACTIVATIONS)}"),
    "tau": (_unit, "a number in (0, 1]"),
    "feature_dim": (int_ge(1), "an integer >= 1"),
    "augment_pad": (int_ge(0), "an integer >= 0 (0: no random shift)"),
    "channels": (positive_ints, "a list of positive integers (conv filters per layer)"),
    "strides": (positive_ints, "a list of positive integers (one per conv layer)"),
    "kernel_sizes": (positive_ints, "a list of positive integers (one per conv layer)"),
    "epsilon_decay_steps": (int_ge(1), "an integer >= 1"),
    "epsilon_train": (num_in(0, 1), "a number in [0, 1]"),
    "epsilon_eval": (num_in(0, 1), "a number in [0, 1]"),
    "target_update_every": (int_ge(1), "an integer >= 1 (updates between target updates)"),
    "num_critics": (int_ge(1), "an integer >= 1"),
    "init_temperature": (_positive, "a finite number > 0"),
    "actor_update_every": (int_ge(1), "an integer >= 1 (critic updates per actor update)"),
    "injection": (is_bool, "true or false (spare heads for plasticity=injection)"),
    "network": (lambda v: v in ("mlp", "simba"), "one of ['mlp', 'simba']"),
    "critic_hidden_dim": (int_ge(1), "an integer >= 1 (SimBa's width)"),
    "actor_hidden_dim": (int_ge(1), "an integer >= 1 (SimBa's width)"),
    "critic_num_blocks": (int_ge(0), "an integer >= 0 (SimBa's residual blocks)"),
    "actor_num_blocks": (int_ge(0), "an integer >= 0 (SimBa's residual blocks)"),
    "normalize_observations": (is_bool, "true or false"),
    "weight_decay": (_non_negative, "a finite number >= 0 (AdamW's decoupled weight decay)"),
    "update_order": (lambda v: v in ("critic_first", "actor_first"), "one of ['critic_first', 'actor_first']"),
    "actor_q": (lambda v: v in ("min", "mean"), "one of ['min', 'mean']"),
    "expectile": (num_in(0, 1, True, True), "a number in (0, 1)"),
    "temperature": (_non_negative, "a number >= 0 (AWR inverse temperature)"),
    "max_weight": (_positive, "a number > 0"),
    "dropout": (lambda v: v is None or num_in(0, 1, high_open=True)(v), "null or a number in [0, 1)"),
    "precision": (lambda v: v in PRECISIONS, f"one of {list(PRECISIONS)} (bf16: bfloat16 autocast)"),
    "channels_last": (is_bool, "true or false (NHWC conv memory format)"),
    "init": (lambda v: v in AGENT_INITS, f"one of {list(AGENT_INITS)} (agents/init.py)"),
    "log_std_form": (lambda v: v in LOG_STD_FORMS, f"one of {list(LOG_STD_FORMS)}"),
    "log_std_bounds": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(finite, v))
                       and v[0] < v[1], "[min, max], finite numbers with min < max"),
    "target_entropy": (lambda v: v is None or finite(v), "null or a finite number"),
    "target_entropy_per_action": (finite, "a finite number (H_target = it * |A|; jaxrl SAC -0.5)"),
    "q_views": (int_ge(1), "an integer >= 1 (DrQ's M: augmented views of s)"),
    "target_views": (int_ge(1), "an integer >= 1 (DrQ's K: augmented views of s')"),
    "conv_padding": (lambda v: v in CONV_PADDINGS, f"one of {list(CONV_PADDINGS)}"),
    "layer_norm": (is_bool, "true or false"),
    "actor_layer_norm": (is_bool, "true or false"),
    "backup_entropy": (is_bool, "true or false"),
    "dueling": (is_bool, "true or false"),
    "double": (is_bool, "true or false (double DQN targets)"),
    "renormalize": (is_bool, "true or false"),
    "width_scale": (int_ge(1), "an integer >= 1 (Impala CNN width multiplier)"),
    "num_atoms": (int_ge(2), "an integer >= 2 (C51 support size)"),
    "v_min": (finite, "a finite number"),
    "v_max": (finite, "a finite number"),
    "adam_eps": (_positive, "a number > 0"),
    "spr_weight": (_non_negative, "a number >= 0"),
    "spr_horizon": (int_ge(1), "an integer >= 1 (SPR prediction steps)"),
    "n_step_start": (int_ge(1), "an integer >= 1"),
    "n_step_end": (int_ge(1), "an integer >= 1"),
    "gamma_start": (_unit, "a number in (0, 1]"),
    "gamma_end": (_unit, "a number in (0, 1]"),
    "anneal_updates": (int_ge(1), "an integer >= 1 (updates of the n-step / gamma annealing)"),
    "intensity_scale": (_non_negative, "a number >= 0 (0: no intensity noise)"),
    "huber_delta": (_positive, "a number > 0"),
    "max_grad_norm": (lambda v: v is None or _positive(v), "null (no clipping) or a number > 0"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {list(OPTIMIZERS)} (sam: PLASTIC's SAM, agents/sam.py)"),
    "sam_rho": (_non_negative, "a finite number >= 0 (SAM's perturbation radius)"),
    "sam_head": (lambda v: v in SAM_HEAD_GRADIENTS, f"one of {list(SAM_HEAD_GRADIENTS)} (agents/sam.py)"),
    "conv_layer_norm": (is_bool, "true or false (a channel LayerNorm after each conv)"),
    "conv_activation": (lambda v: v is None or v in ACTIVATIONS,
                        f"null (the same as activation) or one of {sorted(ACTIVATIONS)}"),
}


def key_problems(values: dict, extra_rules: dict | None = None) -> list[tuple[str, str]]:
    """(name, message) for every value a rule refuses: `name = value: must be ...`."""
    rules = {**RULES, **(extra_rules or {})}
    return [(key, f"{key} = {brief(value)}: must be {rules[key][1]}")
            for key, value in values.items() if key in rules and not passes(rules[key][0], value)]


def cross_problems(values: dict) -> list[tuple[str, str]]:
    """(name, message) for hyperparameters that do not fit together."""
    out = []
    m, n = values.get("num_target_critics"), values.get("num_critics")
    if "num_target_critics" in values and m is not None and not (is_int(m) and is_int(n) and 1 <= m <= n):
        out.append(("num_target_critics", f"num_target_critics = {brief(m)}: must be null or an "
                                          f"integer in [1, num_critics={brief(n)}]"))
    if values.get("injection") is True and finite(values.get("weight_decay")) and values["weight_decay"] > 0:
        out.append(("injection", "injection = true with weight_decay > 0: AdamW's decay would still "
                                 "move the frozen head; set agent.weight_decay=0"))
    lo, hi = values.get("v_min"), values.get("v_max")
    if finite(lo) and finite(hi) and lo >= hi:
        out.append(("v_max", f"v_min = {lo!r}, v_max = {hi!r}: v_min must be below v_max"))
    layers = {k: values[k] for k in ("channels", "kernel_sizes", "strides")
              if k in values and positive_ints(values[k])}
    if len({len(v) for v in layers.values()}) > 1:
        out.append(("strides", ", ".join(f"{k} = {brief(list(v))}" for k, v in layers.items())
                    + ": must have one entry per conv layer each (the same length)"))
    return out


def hparam_problems(values: dict, extra_rules: dict | None = None) -> list[tuple[str, str]]:
    """Every refused value, then every mismatch between values that passed."""
    problems = key_problems(values, extra_rules)
    bad = {k for k, _ in problems}
    return problems + [(k, m) for k, m in cross_problems(values) if k not in bad]
