"""TensorBoard HParams for a finished run: its config (dotted keys) and its final eval scores,
so that the HPARAMS tab lists the runs under a --logdir side by side, with the keys that differ
between them first.

They go to their own event file in `<run dir>/tb` (`*.hparams`), written at the end of the run
and replaced if the run is extended later: TensorBoard keeps the first hparams it reads for a
run, so an older file would otherwise win. Only the per-run session summaries are written, no
experiment summary: TensorBoard then takes the columns from all runs together (a sweep over
agents with different keys included)."""
from __future__ import annotations

import math
import time
from pathlib import Path

from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard.summary import scalar
from torch.utils.tensorboard.writer import FileWriter

from runner.sweep import flatten

SUFFIX = ".hparams"
# summary.json key -> the scalar tag of that metric in the HPARAMS tab
FINAL_METRICS = {"final_eval_return": "hparams/final_eval_return",
                 "final_eval_human_normalized": "hparams/final_eval_human_normalized"}
LEFT_OUT = ("resume",)  # and logger.*: where and how a run logs does not change its results


def config_hparams(config: dict) -> dict:
    """The config's values by dotted key (runner/sweep.py's `flatten`: lists as JSON text), with
    null as the text 'null'; without `resume` and `logger.*`."""
    out = {}
    for key, value in flatten(config).items():
        if key in LEFT_OUT or key.startswith("logger."):
            continue
        out[key] = ("null" if value is None else value
                    if isinstance(value, (bool, int, float, str)) else str(value))
    return out


def final_metrics(summary: dict) -> dict:
    """{tag: value} of the final scores summary.json has (the normalized one only on Atari)."""
    out = {}
    for key, tag in FINAL_METRICS.items():
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[tag] = float(value)
    return out


def write_hparams(tb_dir, hparams: dict, metrics: dict, step: int) -> Path:
    """Replace the run's hparams event file in `tb_dir`: session start (hparams), the metrics as
    scalars at `step`, session end. Returns the file written."""
    tb_dir = Path(tb_dir)
    tb_dir.mkdir(parents=True, exist_ok=True)
    for old in tb_dir.glob(f"events.out.tfevents.*{SUFFIX}"):
        old.unlink()
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for key, value in sorted(hparams.items()):
        field = ("bool_value" if isinstance(value, bool) else "string_value"
                 if isinstance(value, str) else "number_value")
        setattr(start.hparams[key], field, value)
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    writer = FileWriter(str(tb_dir), filename_suffix=SUFFIX)
    try:
        writer.add_summary(_session(metadata.SESSION_START_INFO_TAG,
                                    plugin_data_pb2.HParamsPluginData(session_start_info=start)), step)
        for tag, value in metrics.items():
            writer.add_summary(scalar(tag, value), step)
        writer.add_summary(_session(metadata.SESSION_END_INFO_TAG,
                                    plugin_data_pb2.HParamsPluginData(session_end_info=end)), step)
    finally:
        writer.close()
    return next(tb_dir.glob(f"events.out.tfevents.*{SUFFIX}"))


def _session(tag: str, data) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                                        tensor=metadata.NULL_TENSOR)])
