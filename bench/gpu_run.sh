#!/usr/bin/env bash
# The GPU issue's checks in one device run (about 10 minutes): the capture/reset equivalence
# tests, the three benchmarks and the per-agent profile, each under its own time limit and all
# under TOTAL seconds; a step that would not fit is skipped and says so. Logs go to $OUT (the
# device tool's folder; ./gpu_out elsewhere), one file per step, and the tail of each is printed.
# Prepare the packages the GPU machine lacks first, here: `bash bench/gpu_prepare.sh`; then
#   device run: command 'bash bench/gpu_run.sh', carry ['.whl', '.gl'], timeout_s 600
#   STEPS="tests sac" bash bench/gpu_run.sh       # a subset, in this order
#   STEPS="members" bash bench/gpu_run.sh         # issue 20's GPU figure: a group of 10 vs one member
#   DEVICE=cpu QUICK=1 bash bench/gpu_run.sh      # a dry run of the wiring on a CPU
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
TOTAL=${TOTAL:-540}
STEPS=${STEPS:-"tests sac bbf drq profile"}
T0=$(date +%s)

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .gl ] && ls .gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=${__EGL_VENDOR_LIBRARY_FILENAMES:-$vendor}
fi
# MUJOCO_GL is left to envs/gl.py: EGL when a display initialises (the GPU), else OSMesa.
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1;
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

# step NAME LIMIT_S CMD...: run CMD under LIMIT_S (cut to what TOTAL leaves) into $OUT/NAME.log.
step() {
  local name=$1 limit=$2 left
  shift 2
  left=$(( TOTAL - ($(date +%s) - T0) ))
  if [ "$left" -lt 30 ]; then echo "== $name: skipped, ${left}s left of TOTAL=${TOTAL}s"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s): $*"
  local start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "   rc=$? after $(( $(date +%s) - start ))s"
  grep -v "^WARNING:absl" "$OUT/$name.log" | tail -n 25
}

if [ -n "${QUICK:-}" ]; then  # wiring only: tiny runs
  SAC=(--replay-ratio 2 --steps 5 --rounds 1 --warmup 300)
  BBF=(--width 1 --rounds 1 --updates-per-round 1 --warmup 1 --transitions 600)
  DRQ=(--steps 2 --rounds 1 --warmup 100 --batch 16 --replay-ratios 1)
  PROF=(--agents sac,drq_atari --updates 2 --blocks 1 --warmup 2 --transitions 600)
  MEM=(--members 1,2 --modes none --steps 2 --no-sb3)
  MREP=(--members 2 --fill 300 --repeats 2)
else
  SAC=(--replay-ratio 32 --steps 50 --rounds 3)
  BBF=(--rounds 3 --updates-per-round 30)
  DRQ=(--steps 50 --rounds 3)
  PROF=(--updates 20)
  MEM=(--members 1,10 --modes none,compile,cudagraphs --replay-ratio 32 --steps 20 --no-sb3)
  MREP=(--members 10 --fill 5000 --repeats 20)
fi
[ "$DEVICE" = cuda ] && MODES=none,compile,cudagraphs || MODES=none,compile

for s in $STEPS; do
  case $s in
    tests)   step tests 150 $PY -m pytest -m gpu tests/test_cuda_graphs.py -q -p no:cacheprovider ;;
    sac)     step sac_throughput 120 $PY bench/sac_throughput.py --device "$DEVICE" --modes "$MODES" "${SAC[@]}" ;;
    bbf)     step bbf_throughput 150 $PY bench/bbf_throughput.py --device "$DEVICE" --modes "$MODES" "${BBF[@]}" ;;
    drq)     step drq_env_throughput 120 $PY bench/drq_env_throughput.py --device "$DEVICE" --compile "$MODES" "${DRQ[@]}" ;;
    profile) step profile_update 150 $PY bench/profile_update.py --device "$DEVICE" "${PROF[@]}" ;;
    members) step members_throughput 300 $PY bench/members_throughput.py --device "$DEVICE" "${MEM[@]}"
             step members_replay 90 $PY bench/members_replay.py --device "$DEVICE" "${MREP[@]}" ;;
    *)       echo "unknown step '$s': allowed tests sac bbf drq profile members" ;;
  esac
done
echo "done in $(( $(date +%s) - T0 ))s; logs in $OUT"
