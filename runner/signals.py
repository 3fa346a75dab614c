"""Stop requests from signals: SIGTERM (what SLURM and most schedulers send before preemption),
SIGINT (Ctrl-C), SIGUSR1 (SLURM's ``--signal=USR1@<seconds>``) and SIGUSR2 (what submitit asks
SLURM to send before a time limit). The handler only records the signal; the training loop
finishes the env step it is in (its updates included), writes a checkpoint and exits with status
128 + the signal number (README "Preemption and faults"). A handler that was installed before
(submitit's, which requeues the job) is called after the checkpoint: `hand_over`.

A signal that arrives while the checkpoint is being written is recorded and changes nothing: the
write completes (it is atomic in any case, agents/serialization.py).
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", None),
                                  getattr(signal, "SIGUSR2", None)) if s is not None)


class Interrupted(Exception):
    """Training stopped on a signal after writing a checkpoint; `status` is the exit code."""

    def __init__(self, signum: int, checkpoint, env_steps: int, written: bool = True):
        self.signum, self.checkpoint, self.env_steps = signum, checkpoint, env_steps
        self.status = 128 + signum
        name = signal.Signals(signum).name
        saved = "checkpoint written to" if written else "no checkpoint written now (non-finite " \
            "parameters, see the warning); the last one is"
        super().__init__(f"{name}: stopped at env step {env_steps}, {saved} {checkpoint}; "
                         f"continue with: python train.py resume={checkpoint.parent}")


class StopRequests:
    """Context manager: while active, the stop signals set `signum` instead of killing the
    process. Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals, self.signum, self._previous = tuple(signals), None, {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


def hand_over(signum: int) -> None:
    """Call the handler `signum` had before training took it over, now that the checkpoint is
    written: under submitit (hydra/launcher=submitit_slurm) that handler requeues the job, and
    the requeued job continues from the checkpoint with resume=auto. Python's own defaults
    (raise KeyboardInterrupt, terminate) are not called: the caller exits with its status."""
    handler = signal.getsignal(signum)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signum, None)
