#!/usr/bin/env bash
# End-to-end scoring speed of `wavebench score` with the default metrics (mcd, c0_rmse_db,
# mel_l1, stoi, estoi) on ../shared/data/speech16k against a degraded copy (20 dB white noise, then 8-bit
# mu-law), as audio seconds scored per wall second. Includes reading files, the process pool's
# start-up and writing the tables.
# Usage: bash benchmarks/bench_score.sh [JOBS=2] [DATA=../shared/data/speech16k]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-2}
DATA=${2:-../shared/data/speech16k}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python - "$DATA" "$WORK/degraded" <<'PY'
import sys
from pathlib import Path
import soundfile as sf
sys.path.insert(0, "benchmarks")
from bench_metrics import degrade
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True)
total = 0.0
for i, path in enumerate(sorted(src.glob("*.flac"))):
    audio, rate = sf.read(path, dtype="float32")
    sf.write(dst / f"{path.stem}.wav", degrade(audio, i), rate)
    total += len(audio) / rate
(dst.parent / "seconds").write_text(f"{total}")
PY
SECONDS_AUDIO=$(cat "$WORK/seconds")
START=$(date +%s.%N)
wavebench score --reference "$DATA" --generated "degraded=$WORK/degraded" -o "$WORK/out" \
    --jobs "$JOBS" --no-progress > /dev/null
END=$(date +%s.%N)
python -c "a=$SECONDS_AUDIO; w=$END-$START; print(f'{a:.1f} s of audio scored in {w:.1f} s wall with --jobs $JOBS: {a / w:.1f} x real time')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
