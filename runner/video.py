"""Evaluation videos: record one greedy episode, save it as an mp4 and/or a TensorBoard summary.

Frames come from ``env.render()`` (uint8 (H, W, 3)): DMC envs render their camera (pixel envs
return the frame they just observed, at no extra cost); gymnasium envs need
``render_mode="rgb_array"``, which ``envs.make_env`` sets where the env supports it.

TensorBoard: ``SummaryWriter.add_video`` needs ``moviepy.editor``, which moviepy 2.x removed
(torch 2.13 still imports it; with moviepy 2.2.1 it logs nothing), so
:func:`add_tensorboard_video` encodes the animated GIF itself (Pillow) and writes the same image
summary ``add_video`` would: TensorBoard's Images tab plays it. No moviepy needed.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_FPS = 30.0


def record_episode(agent, env, seed: int, max_steps: int | None = None
                   ) -> tuple[np.ndarray, float]:
    """Run one episode with ``agent.act(obs, deterministic=True)`` from ``reset(seed=seed)``.

    Returns (frames uint8 [T, H, W, 3], undiscounted return), T = agent steps + 1 (the first
    frame is the reset state). ``max_steps`` cuts the episode short.
    """
    from envs.gl import configure_gl

    configure_gl()  # gymnasium's MuJoCo envs read MUJOCO_GL at their first render
    obs, _ = env.reset(seed=seed)
    frames = [_frame(env)]
    total, steps, done = 0.0, 0, False
    while not done and (max_steps is None or steps < max_steps):
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
        total += float(reward)
        steps += 1
        done = terminated or truncated
        frames.append(_frame(env))
    return np.stack(frames), total


def _frame(env) -> np.ndarray:
    frame = env.render()
    if frame is None:
        raise ValueError(f"{env} has render_mode={getattr(env, 'render_mode', None)!r}: "
                         f"build it with render_mode='rgb_array' to record videos")
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"render() must give an (H, W, 3) RGB frame, got shape {frame.shape}")
    return frame.astype(np.uint8, copy=False)


def video_fps(env, default: float = DEFAULT_FPS) -> float:
    """Real-time frames per second of an agent step: the env's ``render_fps`` over the action
    repeat of every ``ActionRepeat`` wrapper (a DMC walker at repeat 2: 40 / 2 = 20)."""
    from envs.wrappers import ActionRepeat

    fps = env.metadata.get("render_fps") or default
    layer = env
    while layer is not None:
        if isinstance(layer, ActionRepeat):
            fps /= layer.k
        layer = getattr(layer, "env", None)
    return float(fps)


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty [T, H, W, 3] array, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def write_mp4(frames, path, fps: float = DEFAULT_FPS) -> Path:
    """Write [T, H, W, 3] uint8 frames to an H.264 mp4 (yuv420p, plays everywhere), atomically:
    a temporary file in the same folder, then ``os.replace``. Odd sizes get an edge-padded
    last row/column (yuv420p needs even sizes). Returns the path."""
    import imageio.v2 as imageio  # imageio-ffmpeg brings its own ffmpeg binary

    frames = _check_frames(frames)
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.mp4")
    os.close(fd)
    try:
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                pixelformat="yuv420p", macro_block_size=1,
                                ffmpeg_log_level="error") as writer:
            for frame in frames:
                writer.append_data(frame)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a video is as readable as other outputs
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def encode_gif(frames, fps: float = DEFAULT_FPS) -> bytes:
    """[T, H, W, 3] uint8 frames as a looping animated GIF (GIF delays are in 1/100 s)."""
    from PIL import Image

    frames = _check_frames(frames)
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000.0 / fps)), loop=0)
    return buffer.getvalue()


def add_tensorboard_video(writer, tag: str, frames, step: int, fps: float = DEFAULT_FPS) -> None:
    """Log [T, H, W, 3] uint8 frames to a torch ``SummaryWriter`` as an animated-GIF image
    summary under ``tag`` (what ``add_video`` writes, without moviepy)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = _check_frames(frames)
    _, height, width, channels = frames.shape
    image = Summary.Image(height=height, width=width, colorspace=channels,
                          encoded_image_string=encode_gif(frames, fps))
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    writer._get_file_writer().add_summary(summary, global_step=step)  # as add_video does


def record_eval_video(agent, env, seed: int, video_dir, writer, step: int) -> Path:
    """Record one greedy episode to `<video_dir>/eval_<step>.mp4` and to TensorBoard `eval/video`."""
    frames, _ = record_episode(agent, env, seed)
    fps = video_fps(env)
    path = Path(video_dir) / f"eval_{step:08d}.mp4"
    write_mp4(frames, path, fps)
    add_tensorboard_video(writer, "eval/video", frames, step, fps)
    return path
