#!/usr/bin/env bash
# Run HERE (a developer machine that reaches PyPI and Debian) before a `device` run of
# bench/gpu_run.sh. The GPU machine has torch, numpy, pytest, scipy, pandas, matplotlib, tqdm,
# pyyaml, absl, lxml and opencv, but nothing can be installed there from the network: this
# downloads what it lacks into .whl/ (wheels for its Python, 3.12) and the EGL/GL loader
# packages into .gl/ (for MuJoCo's EGL rendering on the NVIDIA driver). Both folders are
# git-ignored and travel with `carry: [".whl", ".gl"]` (64 MiB at most in all: dm_control's
# wheel alone is 56 MB, so it is repacked without the locomotion/soccer/dog assets and tests,
# which no suite task we run loads).
#   bash bench/gpu_prepare.sh            # PYVER=3.11 for a local dry run of gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
rm -rf .whl && mkdir -p .whl
# Pinned to the versions the test suite passes with on the CPU machines.
PKGS=(gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==3.17.0 dm-control==1.0.50 dm-env==1.6
      dm-tree==0.1.10 glfw==2.11.0 pyopengl==3.1.10 hydra-core==1.3.8 omegaconf==2.3.1
      stable-baselines3==2.9.2)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 any; do PLATFORMS+=(--platform "$p"); done
python -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp "${PLATFORMS[@]}" -d .whl "${PKGS[@]}"
# hydra's parser runtime is published as a source archive only: build its (pure-Python) wheel.
python -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3

# dm_control without the assets of domains we never load (soccer, CMU/locomotion walkers, dog)
# and its own tests; the result is still a valid wheel for `pip install --no-deps`.
python - <<'PY'
import glob, zipfile
src = glob.glob(".whl/dm_control-*.whl")[0]
drop = ("dm_control/locomotion/soccer/", "dm_control/locomotion/walkers/assets/",
        "dm_control/suite/dog_assets/", "dm_control/mujoco/testing/", "dm_control/blender/")
tmp = src + ".slim"
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if item.filename.startswith(drop):
            continue
        if item.filename.endswith(".dist-info/RECORD"):  # list only the files kept
            rows = [r for r in zin.read(item).decode().splitlines() if not r.startswith(drop)]
            zout.writestr(item, "\n".join(rows) + "\n")
        else:
            zout.writestr(item, zin.read(item))
import os
os.replace(tmp, src)
PY

# EGL and GL loaders (libglvnd) for rendering on the NVIDIA driver, as the device README says.
if command -v apt-get >/dev/null; then
  rm -rf .gl && mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd .gl && apt-get "${o[@]}" download -qq libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .whl .gl 2>/dev/null || true
echo "next: device run with carry ['.whl', '.gl'] and command 'bash bench/gpu_run.sh'"
