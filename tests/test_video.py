"""Tests for evaluation videos (runner.video): recording, mp4 files, TensorBoard summaries."""

import io
import os

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from envs import make_env
from tests.conftest import needs_gl
from runner.video import add_tensorboard_video, record_episode, video_fps, write_mp4



class ZeroAgent:
    """Acts with zeros and checks that evaluation asks for deterministic actions."""

    def __init__(self, action_shape):
        self.action_shape = action_shape
        self.observations = []

    def act(self, obs, deterministic=False):
        assert deterministic
        self.observations.append(np.array(obs))
        return np.zeros(self.action_shape, np.float32)


def _moving_square(t=12, h=32, w=48):
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, 4:20, 2 + 2 * i:18 + 2 * i] = (255, 128, 0)
    return frames


def test_write_mp4_reads_back(tmp_path):
    frames = _moving_square()
    path = write_mp4(frames, tmp_path / "videos" / "eval_1000.mp4", fps=10)
    assert path.exists() and os.listdir(path.parent) == ["eval_1000.mp4"]  # no temp left
    reader = imageio.get_reader(path)
    back = np.stack(list(reader.iter_data()))  # len(reader) is inf
    assert reader.get_meta_data()["fps"] == pytest.approx(10)
    reader.close()
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 8  # lossy, but close


def test_write_mp4_odd_size_and_bad_input(tmp_path):
    path = write_mp4(_moving_square(t=3, h=21, w=33), tmp_path / "odd.mp4", fps=5)
    assert np.stack(list(imageio.get_reader(path).iter_data())).shape == (3, 22, 34, 3)  # padded to even
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(np.zeros((2, 8, 8, 3), np.float32), tmp_path / "bad.mp4")
    assert sorted(os.listdir(tmp_path)) == ["odd.mp4"]


def test_tensorboard_video_summary(tmp_path):
    frames = _moving_square(t=5)
    writer = SummaryWriter(str(tmp_path))
    add_tensorboard_video(writer, "eval/video", frames, step=7, fps=10)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["eval/video"]
    (image,) = events.Images("eval/video")
    assert image.step == 7 and (image.height, image.width) == (32, 48)
    gif = Image.open(io.BytesIO(image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5


@needs_gl
def test_record_state_env_episode(tmp_path):
    env = make_env("dmc:cartpole-balance", seed=0, action_repeat=2)
    agent = ZeroAgent(env.action_space.shape)
    frames, total = record_episode(agent, env, seed=3, max_steps=4)
    assert frames.shape == (5, 84, 84, 3) and frames.dtype == np.uint8
    assert isinstance(total, float) and 0.0 < total <= 8.0
    assert len(agent.observations) == 4 and agent.observations[0].shape == (5,)
    again, total2 = record_episode(ZeroAgent(env.action_space.shape), env, seed=3, max_steps=4)
    np.testing.assert_array_equal(frames, again)
    assert total2 == total
    assert video_fps(env) == pytest.approx(100 / 2)  # cartpole steps at 100 Hz, repeat 2
    path = write_mp4(frames, tmp_path / "state.mp4", fps=video_fps(env))
    assert imageio.get_reader(path).count_frames() == 5


@needs_gl
def test_record_pixel_env_episode_uses_observed_frames():
    env = make_env("dmc:walker-walk", pixels=True, seed=0, image_size=32, frame_stack=3)
    agent = ZeroAgent(env.action_space.shape)
    frames, _ = record_episode(agent, env, seed=1, max_steps=2)
    assert frames.shape == (3, 32, 32, 3)
    for obs, frame in zip(agent.observations, frames):  # the newest stacked frame
        np.testing.assert_array_equal(obs[-3:].transpose(1, 2, 0), frame)
    assert video_fps(env) == pytest.approx(40 / 2)


def test_gym_envs_get_rgb_array_render_mode():
    env = make_env("gym:Pendulum-v1", seed=0)
    assert env.unwrapped.render_mode == "rgb_array"


def test_render_mode_none_is_reported():
    class NoRender:
        render_mode = None

        def reset(self, seed=None):
            return np.zeros(1), {}

        def render(self):
            return None

    with pytest.raises(ValueError, match="rgb_array"):
        record_episode(ZeroAgent((1,)), NoRender(), seed=0)
