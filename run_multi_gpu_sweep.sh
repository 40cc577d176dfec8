#!/usr/bin/env bash
# Create a sweep and run one agent per GPU until each has run its trials.
#
#   ./run_multi_gpu_sweep.sh CONFIG [RUNS_PER_GPU=10] [PROJECT=pathstar_sweep] [ENTITY]
#
# Environment:
#   GPUS=2,3          use these GPUs, by nvidia-smi index; each must be one that `nvidia-smi --list-gpus`
#                     shows (default: the GPUs in CUDA_VISIBLE_DEVICES when it is set, else all of them)
#   AGENTS_PER_GPU=k  run k agents on each GPU (default 1); each runs RUNS_PER_GPU trials
#   BACKEND=local     passed to run_sweep.py --backend (auto, wandb or local)
#   STORAGE=URL       passed to run_sweep.py --storage (local backend)
#   PYTHON=python3    the interpreter
#
# Agents get CUDA_DEVICE_ORDER=PCI_BUS_ID, so CUDA numbers the GPUs as nvidia-smi does. A GPUS or
# CUDA_VISIBLE_DEVICES entry that is not a listed GPU stops the script (one line, exit 2) before
# anything starts. With no GPU (or no nvidia-smi), or CUDA_VISIBLE_DEVICES set empty, one agent runs
# on the CPU and its output is shown here too.
# Logs and the sweeps/ folder go in the current directory. Ctrl-C stops this script's agents
# (each marks its trial failed and queued again), and the exit status is 0 only if every agent
# succeeded.
set -u

if [ $# -lt 1 ] || [ $# -gt 4 ]; then
    echo "usage: $0 CONFIG [RUNS_PER_GPU=10] [PROJECT=pathstar_sweep] [ENTITY]" >&2
    exit 2
fi
CONFIG=$1
RUNS=${2:-10}
PROJECT=${3:-pathstar_sweep}
ENTITY=${4:-}
PYTHON=${PYTHON:-python3}
AGENTS_PER_GPU=${AGENTS_PER_GPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
SWEEP="$HERE/run_sweep.py"

need_count() {  # $1 = name, $2 = value: a positive integer, or one line and exit 2
    case "$2" in
        ''|*[!0-9]*|0) echo "error: $1 must be a positive integer, got '$2'" >&2; exit 2 ;;
    esac
}
need_count RUNS_PER_GPU "$RUNS"
need_count AGENTS_PER_GPU "$AGENTS_PER_GPU"

# options every run_sweep.py call shares
common=(--project "$PROJECT")
[ -n "$ENTITY" ] && common+=(--entity "$ENTITY")
[ -n "${BACKEND:-}" ] && common+=(--backend "$BACKEND")
[ -n "${STORAGE:-}" ] && common+=(--storage "$STORAGE")

# 1. which GPUs, checked before anything starts. CUDA numbers GPUs fastest first unless told
# otherwise; PCI_BUS_ID is nvidia-smi's order, so an index means the same GPU to both.
export CUDA_DEVICE_ORDER=PCI_BUS_ID
smi=""
command -v nvidia-smi >/dev/null 2>&1 && smi=$(nvidia-smi --list-gpus 2>/dev/null)
indices=$(printf '%s\n' "$smi" | sed -n 's/^GPU \([0-9][0-9]*\):.*/\1/p' | tr '\n' ' ' | sed 's/ $//')
uuids=$(printf '%s\n' "$smi" | sed -n 's/.*(UUID: \([^)]*\)).*/\1/p' | tr '\n' ' ')
known=" $indices $uuids "  # what an entry may be, each with a space on both sides

pick_gpus() {  # $1 = the variable's name, $2 = its value: sets gpus, or one line and exit 2
    local name=$1 value=$2 entry gpu
    gpus=" "
    if [ -z "$indices" ]; then
        echo "error: $name: '$value' asked for, but nvidia-smi lists no GPU here; unset $name to run one agent on the CPU" >&2
        exit 2
    fi
    for entry in $(printf '%s' "$value" | tr ',' ' '); do
        case "$entry" in
            GPU-*|MIG-*) gpu=$entry ;;  # a UUID, as CUDA_VISIBLE_DEVICES may hold
            *[!0-9]*) echo "error: $name: '$entry' is not a GPU index (nvidia-smi lists $indices)" >&2; exit 2 ;;
            *) gpu=$(printf '%s' "$entry" | sed 's/^0*\([0-9]\)/\1/') ;;  # 01 is GPU 1
        esac
        case "$known" in
            *" $gpu "*) ;;
            *) echo "error: $name: GPU $gpu is not one that nvidia-smi lists ($indices)" >&2; exit 2 ;;
        esac
        case "$gpus" in
            *" $gpu "*) echo "error: $name: GPU $gpu is given twice; set AGENTS_PER_GPU for more agents per GPU" >&2
                        exit 2 ;;
        esac
        gpus="$gpus$gpu "
    done
    if [ "$gpus" = " " ]; then
        echo "error: $name: no GPU in '$value'" >&2
        exit 2
    fi
}

no_gpu="no GPU found"
if [ -n "${GPUS:-}" ]; then
    pick_gpus GPUS "$GPUS"
elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then  # the GPUs this shell was given (by a scheduler, say)
    pick_gpus CUDA_VISIBLE_DEVICES "$CUDA_VISIBLE_DEVICES"
elif [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then  # set and empty: no GPU for CUDA
    gpus=""
    no_gpu="CUDA_VISIBLE_DEVICES is empty"
else
    gpus=$indices
fi

# 2. create the sweep; its id is on the line 'Sweep created! ID: <id>'
created=$("$PYTHON" "$SWEEP" --sweep_config "$CONFIG" --create_only "${common[@]}")
status=$?
printf '%s\n' "$created"
[ $status -eq 0 ] || exit $status
SWEEP_ID=$(printf '%s\n' "$created" | sed -n 's/^Sweep created! ID: *\([^ ]*\).*$/\1/p' | head -n 1)
if [ -z "$SWEEP_ID" ]; then
    echo "error: no 'Sweep created! ID: <id>' line in run_sweep.py's output" >&2
    exit 1
fi

join=(--sweep_id "$SWEEP_ID" --count "$RUNS" "${common[@]}")
pids=""
logs=""

stop_agents() {
    echo "stopping agents:$pids" >&2
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
    for pid in $pids; do wait "$pid" 2>/dev/null; done
    [ -n "${tail_pid:-}" ] && kill "$tail_pid" 2>/dev/null
    exit 130
}
trap stop_agents INT TERM

# 3. one agent per GPU (or AGENTS_PER_GPU of them), each pinned with CUDA_VISIBLE_DEVICES
tail_pid=""
if [ -z "$(printf '%s' "$gpus" | tr -d ' ')" ]; then
    echo "$no_gpu: running one agent on the CPU (log: cpu_sweep.log)"
    : >cpu_sweep.log  # exists before tail looks for it; the agent appends
    "$PYTHON" "$SWEEP" "${join[@]}" >>cpu_sweep.log 2>&1 &
    pids=" $!"
    logs="cpu_sweep.log"
    tail -n +1 -f cpu_sweep.log &
    tail_pid=$!
else
    for gpu in $gpus; do
        k=0
        while [ $k -lt "$AGENTS_PER_GPU" ]; do
            if [ "$AGENTS_PER_GPU" -gt 1 ]; then log="gpu_${gpu}_${k}_sweep.log"; else log="gpu_${gpu}_sweep.log"; fi
            CUDA_VISIBLE_DEVICES=$gpu "$PYTHON" "$SWEEP" "${join[@]}" >"$log" 2>&1 &
            pids="$pids $!"
            logs="$logs $log"
            echo "agent on GPU $gpu: pid $!, log $log"
            k=$((k + 1))
        done
    done
    echo
    echo "sweep $SWEEP_ID: $RUNS trials per agent. Follow along with:"
    for log in $logs; do echo "  tail -f $log"; done
    echo "  watch -n 1 nvidia-smi"
fi
echo "results so far: $PYTHON $SWEEP --sweep_id $SWEEP_ID --results   (local backend)"

# 4. wait for every agent; any failure makes the exit status non-zero
status=0
for pid in $pids; do
    wait "$pid" || status=1
done
if [ -n "$tail_pid" ]; then
    sleep 1  # let tail print the last lines
    kill "$tail_pid" 2>/dev/null
    wait "$tail_pid" 2>/dev/null
fi
if [ $status -eq 0 ]; then
    echo "all agents finished"
else
    echo "some agents failed; see:$logs" >&2
fi
exit $status
