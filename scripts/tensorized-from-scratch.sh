#!/usr/bin/env bash
# Tensorized networks trained from scratch (the pre-set road): fmnist-cnn in TT and in TR (every layer but the first
# conv, at 5× fewer parameters in those layers), trained for 5 epochs by the existing trainer (Adam 1e-3, cosine) on
# Fashion-MNIST; each must reach ≥ 89% test accuracy. Writes OUT_DIR/{tt,tr}.json (the `lowrank train --json`
# records) and the checkpoints; exits 1 if a format falls short or fails. About 15–45 minutes per format on 2 cores.
#
# Usage: scripts/tensorized-from-scratch.sh [OUT_DIR]   (default: lowrank-from-scratch in the current folder)
set -euo pipefail
mkdir -p "${1:-lowrank-from-scratch}"
out=$(cd "${1:-lowrank-from-scratch}" && pwd)
cd "$(dirname "$0")/.."
make release >&2
status=0
for format in tt tr; do
    if ! .build/release/lowrank train --model fmnist-cnn --format "$format" --ratio 5 --epochs 5 --optimizer adam --lr 0.001 \
            --cosine --out "$out/$format.safetensors" --json > "$out/$format.json.partial"; then
        rm -f "$out/$format.json.partial"
        echo "$format: training failed" >&2
        status=1
        continue
    fi
    mv "$out/$format.json.partial" "$out/$format.json"
    python3 - "$format" "$out/$format.json" <<'PY' || status=1
import json, sys
format, path = sys.argv[1], sys.argv[2]
run = json.load(open(path))
accuracies = [100 * e["test_accuracy"] for e in run["epochs"]]
final = accuracies[-1]
print(f"{format}: {run['parameters']:,} parameters, test accuracy per epoch "
      + ", ".join(f"{a:.2f}" for a in accuracies) + f"% ({run['total_seconds'] / 60:.1f} min): "
      + ("meets" if final >= 89 else "MISSES") + " the 89% target")
sys.exit(0 if final >= 89 else 1)
PY
done
exit $status
