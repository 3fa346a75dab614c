"""Parse and validate environment ids (``dmc:<domain>-<task>``, ``atari:<Game>``, ``gym:<id>``)
and build envs."""

from __future__ import annotations

import difflib
import importlib
from typing import NamedTuple

import gymnasium

from envs.wrappers import ActionRepeat, apply_generic_wrappers, check_action_repeat

PREFIXES = ("dmc", "atari", "gym")
# Namespaces whose environments are registered by importing a package.
_NAMESPACE_MODULES = {"ALE": "ale_py"}
_MAX_MATCHES = 10


class EnvIdError(ValueError):
    """An environment id that is malformed or names no known environment."""


class ParsedEnvId(NamedTuple):
    """A validated id: ``kind`` is 'dmc', 'atari' or 'gym'; ``task`` is None but for DMC."""

    kind: str
    name: str
    task: str | None = None


def _split_prefix(env_id: object) -> tuple[str, str]:
    if not isinstance(env_id, str):
        raise EnvIdError(
            f"env_id must be a string like 'dmc:cheetah-run' or 'gym:Pendulum-v1', "
            f"got {type(env_id).__name__}"
        )
    prefix, sep, rest = env_id.partition(":")
    if not sep:
        raise EnvIdError(
            f"env_id {env_id!r} has no prefix; expected '<prefix>:<name>' "
            f"with prefix one of: {', '.join(PREFIXES)}"
        )
    if prefix not in PREFIXES:
        raise EnvIdError(
            f"unknown env prefix {prefix!r} in {env_id!r}; allowed prefixes: {', '.join(PREFIXES)}"
        )
    if not rest:
        raise EnvIdError(f"env_id {env_id!r} has an empty name after '{prefix}:'")
    return prefix, rest


def _check_dmc(env_id: str, name: str) -> ParsedEnvId:
    from envs.dmc import all_tasks  # imported lazily: dm_control is heavy

    tasks = all_tasks()
    domain, sep, task = name.partition("-")
    if domain not in tasks:
        raise EnvIdError(
            f"unknown DMC domain {domain!r} in {env_id!r}; valid domains: "
            f"{', '.join(sorted(tasks))}"
        )
    if not sep or task not in tasks[domain]:
        what = f"unknown DMC task {task!r}" if sep else "missing DMC task"
        raise EnvIdError(
            f"{what} for domain {domain!r} in {env_id!r} (expected 'dmc:<domain>-<task>'); "
            f"tasks of {domain!r}: {', '.join(tasks[domain])}"
        )
    return ParsedEnvId("dmc", domain, task)


def _import_registering_module(name: str) -> str:
    """Import the module of a ``module:EnvId`` name or of a known namespace; return the id."""
    module, sep, gym_id = name.rpartition(":")
    if sep:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise EnvIdError(
                f"cannot import module {module!r} to register {gym_id!r}: {exc}"
            ) from exc
    namespace = gym_id.split("/", 1)[0] if "/" in gym_id else None
    if namespace in _NAMESPACE_MODULES and gym_id not in gymnasium.registry:
        try:
            importlib.import_module(_NAMESPACE_MODULES[namespace])
        except ImportError:
            pass
    return gym_id


def _check_gym(env_id: str, name: str) -> ParsedEnvId:
    gym_id = _import_registering_module(name)
    try:
        gymnasium.spec(gym_id)
    except gymnasium.error.Error as exc:
        matches = difflib.get_close_matches(
            gym_id, list(gymnasium.registry), n=_MAX_MATCHES, cutoff=0.6
        )
        hint = (
            f"close matches: {', '.join(matches)}"
            if matches
            else "no close matches; if a package registers it, use 'gym:<module>:<id>' "
            "or see gymnasium.pprint_registry()"
        )
        raise EnvIdError(f"unknown gymnasium id {gym_id!r} in {env_id!r} ({exc}); {hint}") from None
    return ParsedEnvId("gym", gym_id)


def _render_kwargs(gym_id: str) -> dict:
    """``render_mode="rgb_array"`` where the env supports it, so ``render()`` gives frames for
    videos (nothing is rendered until ``render()`` is called)."""
    spec = gymnasium.spec(gym_id)
    if "render_mode" in spec.kwargs:
        return {}
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = gymnasium.envs.registration.load_env_creator(creator)
    modes = (getattr(creator, "metadata", None) or {}).get("render_modes") or ()
    return {"render_mode": "rgb_array"} if "rgb_array" in modes else {}


def check_env_id(env_id: str) -> ParsedEnvId:
    """Validate ``env_id`` without building the environment; raise EnvIdError if bad."""
    prefix, name = _split_prefix(env_id)
    if prefix == "dmc":
        return _check_dmc(env_id, name)
    if prefix == "atari":
        from envs.atari_games import check_game  # the 26 Atari-100k games

        return ParsedEnvId("atari", check_game(name, env_id))
    return _check_gym(env_id, name)


def make_env(env_id: str, seed: int | None = None, action_repeat: int | None = None, *,
             pixels: bool = False, frame_stack: int | None = None, training: bool = True,
             image_size: int = 84, grayscale: bool = False) -> gymnasium.Env:
    """Build the env for ``env_id``; ``seed`` seeds the task RNG and the action space (still
    call ``reset(seed=...)``).

    - ``dmc:`` / ``gym:`` from states: flat float32 observations, [-1, 1] Box actions;
      ``action_repeat`` None means 1.
    - ``dmc:`` with ``pixels=True``: uint8 [3 * frame_stack, image_size, image_size] renders
      ([frame_stack, ...] with ``grayscale``);
      ``action_repeat`` None means the PlaNet value of the domain, ``frame_stack`` None means 3.
    - ``atari:<Game>``: the Atari-100k protocol, uint8 [frame_stack (4), 84, 84]; ``training``
      False drops the training-only parts (life loss as terminal, reward clipping).
    """
    parsed = check_env_id(env_id)
    if parsed.kind == "atari":
        if action_repeat not in (None, 1) or pixels:
            raise ValueError(f"{env_id}: Atari envs have a fixed frame skip of 4 and are always "
                             f"pixels; leave action_repeat and pixels unset")
        from envs.atari import make_atari

        return make_atari(parsed.name, seed=seed, training=training,
                          frame_stack=4 if frame_stack is None else frame_stack)
    if pixels:
        if parsed.kind != "dmc":
            raise ValueError(f"pixels=True needs a 'dmc:' id, got {env_id!r}")
        from envs.dmc_pixels import make_dmc_pixels

        return make_dmc_pixels(parsed.name, parsed.task, seed=seed, action_repeat=action_repeat,
                               frame_stack=3 if frame_stack is None else frame_stack,
                               image_size=image_size, grayscale=grayscale)
    action_repeat = check_action_repeat(1 if action_repeat is None else action_repeat)
    if parsed.kind == "dmc":
        from envs.dmc import DMCEnv

        env: gymnasium.Env = DMCEnv(parsed.name, parsed.task, seed=seed)
    else:
        env = apply_generic_wrappers(gymnasium.make(parsed.name, **_render_kwargs(parsed.name)))
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    if seed is not None:
        env.action_space.seed(seed)
    return env
