#!/usr/bin/env bash
# Latency of a TVN .tflite on an Android phone, with TFLite's benchmark_model,
# as the same JSON as `python -m tvn_tf.benchmark` (last line of stdout).
#
#   tools/android_benchmark.sh MODEL.tflite [--threads=4] [--runs=50] [--repeats=1]
#                              [--benchmark_model=PATH] [--serial=SERIAL] [-- EXTRA...]
#
# Needs adb and a phone with USB debugging; the benchmark_model binary for the
# phone's ABI (see docs/deployment.md) is pushed from --benchmark_model (default:
# $BENCHMARK_MODEL, else ./benchmark_model) unless already on the phone.
# --repeats=N (N > 1) calls the tool N times with one timed run each, so that
# p90 and p99 come from the N runs; otherwise p50 is the tool's median (or
# average) and p90/p99 are null. EXTRA flags go to benchmark_model as they are
# (e.g. --use_gpu=true, --enable_op_profiling=true). The raw output is kept in
# MODEL.benchmark_model.txt beside the model.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

model="" threads=4 runs=50 repeats=1 serial="${ANDROID_SERIAL:-}"
binary="${BENCHMARK_MODEL:-./benchmark_model}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads=*) threads="${1#*=}" ;;
    --runs=*) runs="${1#*=}" ;;
    --repeats=*) repeats="${1#*=}" ;;
    --benchmark_model=*) binary="${1#*=}" ;;
    --serial=*) serial="${1#*=}" ;;
    -h|--help) usage ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "android_benchmark.sh: unknown flag $1" >&2; usage ;;
    *) [ -z "$model" ] || { echo "android_benchmark.sh: one MODEL only (got $model and $1)" >&2; exit 2; }
       model="$1" ;;
  esac
  shift
done
[ -n "$model" ] || usage
[ -f "$model" ] || { echo "android_benchmark.sh: $model: no such file" >&2; exit 1; }
case "$model" in *.tflite) ;; *) echo "android_benchmark.sh: $model: expected a .tflite file" >&2; exit 1 ;; esac
for n in "$threads" "$runs" "$repeats"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "android_benchmark.sh: --threads, --runs and --repeats take positive integers (got $n)" >&2; exit 1; }
done
command -v adb >/dev/null || { echo "android_benchmark.sh: adb not found (Android platform-tools)" >&2; exit 1; }

adb_() { if [ -n "$serial" ]; then adb -s "$serial" "$@"; else adb "$@"; fi; }
remote_dir=/data/local/tmp/tvn
remote_bin=$remote_dir/benchmark_model
remote_model=$remote_dir/$(basename "$model")

adb_ get-state >/dev/null 2>&1 || { echo "android_benchmark.sh: no phone found by adb (adb devices)" >&2; exit 1; }
adb_ shell mkdir -p "$remote_dir"
if ! adb_ shell "test -x $remote_bin" >/dev/null 2>&1; then
  [ -f "$binary" ] || { echo "android_benchmark.sh: $binary: no benchmark_model binary to push (--benchmark_model=PATH; see docs/deployment.md)" >&2; exit 1; }
  adb_ push "$binary" "$remote_bin" >/dev/null
  adb_ shell chmod +x "$remote_bin"
fi
echo "pushing $model" >&2
adb_ push "$model" "$remote_model" >/dev/null
device="$(adb_ shell getprop ro.product.model | tr -d '\r') ($(adb_ shell getprop ro.soc.model | tr -d '\r'), Android $(adb_ shell getprop ro.build.version.release | tr -d '\r'))"

raw="${model%.tflite}.benchmark_model.txt"
: > "$raw"
if [ "$repeats" -gt 1 ]; then
  for i in $(seq "$repeats"); do
    echo "benchmark_model call $i of $repeats" >&2
    adb_ shell "$remote_bin" --graph="$remote_model" --num_threads="$threads" \
      --num_runs=1 --min_secs=0 "${extra[@]}" >> "$raw" 2>&1
  done
else
  echo "benchmark_model: $runs runs, $threads threads" >&2
  adb_ shell "$remote_bin" --graph="$remote_model" --num_threads="$threads" \
    --num_runs="$runs" "${extra[@]}" >> "$raw" 2>&1
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python=python3
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$python" -m tvn_tf.deploy.android \
  --input="$raw" --model_path="$model" --machine="$device"
