#!/usr/bin/env bash
# A 10-member SAC reset-interval ablation as one process (experiments/members_ablation.md):
# Pendulum-v1, 10k env steps, head reset every 1000 or 4000 updates, seeds 0-4 (5 x 2 members),
# compiled group update, one thread. The same group twice, side by side (one core each): once
# uninterrupted, once stopped by SIGTERM after 5 minutes and resumed from its checkpoint; then
# every member's final agent.pt and summary compared (bitwise), and `report` over the 10 runs.
# ~15 min on the 2-core VM.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/members_ablation}
GROUP=(env=gym/pendulum plasticity=head_reset ++plasticity.unit=updates "members.seeds=[0,1,2,3,4]"
       "members.vary={plasticity.every:[1000,4000]}" agent.compile=compile threads=1 train.progress=false)
python train.py "${GROUP[@]}" hydra.run.dir=$OUT/full > $OUT.full.log 2>&1 &
FULL=$!
timeout --preserve-status -s TERM 300 python train.py "${GROUP[@]}" hydra.run.dir=$OUT/interrupted > $OUT.interrupted.log 2>&1
echo "interrupted run: exit status $? (143 = stopped by SIGTERM, checkpoint written)"
tail -n 2 $OUT.interrupted.log
python train.py resume=$OUT/interrupted >> $OUT.interrupted.log 2>&1
echo "resumed run: exit status $?"
wait $FULL
echo "uninterrupted run: exit status $?"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
import torch
out = Path(sys.argv[1])
same = []
for member in sorted((out / "full" / "members").iterdir()):
    other = out / "interrupted" / "members" / member.name
    a = torch.load(member / "agent.pt", weights_only=False)
    b = torch.load(other / "agent.pt", weights_only=False)
    flat = lambda d, p="": {f"{p}{k}": v for k, x in d.items() for k, v in (flat(x, f"{p}{k}.").items() if isinstance(x, dict) else [(k, x)])}
    fa, fb = flat(a), flat(b)
    tensors = all(torch.equal(fa[k], fb[k]) if torch.is_tensor(fa[k]) else fa[k] == fb[k] for k in fa) and fa.keys() == fb.keys()
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (member, other))
    evals = sa["eval"] == sb["eval"] and sa["plasticity_events"] == sb["plasticity_events"]
    same.append(tensors and evals)
    print(f"{member.name}: agent.pt {'bitwise equal' if tensors else 'DIFFERS'}, evaluations and "
          f"resets {'equal' if evals else 'DIFFER'}; {len(sa['plasticity_events'])} resets, final "
          f"return {sa['final_eval_return']:.1f}")
print(f"{sum(same)} of {len(same)} members of the resumed group equal the uninterrupted group's")
PY
python -m runner.report $OUT/full
