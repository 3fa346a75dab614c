"""Environment construction: ``make_env("dmc:cheetah-run")`` or ``make_env("gym:Pendulum-v1")``."""

from envs.registry import EnvIdError, ParsedEnvId, check_env_id, make_env
from envs.wrappers import ActionRepeat, FlattenFloat32Observation, apply_generic_wrappers

__all__ = [
    "ActionRepeat",
    "DMCEnv",
    "EnvIdError",
    "FlattenFloat32Observation",
    "ParsedEnvId",
    "apply_generic_wrappers",
    "check_env_id",
    "make_env",
]


def __getattr__(name: str):
    # DMCEnv is loaded lazily so that gym-only use does not import dm_control.
    if name == "DMCEnv":
        from envs.dmc import DMCEnv

        return DMCEnv
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
