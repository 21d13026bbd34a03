#!/bin/bash
# Tests of jobs/three-well.slurm outside SLURM: srun, scontrol, the program and python are
# stand-ins that record what they were asked to do. USR1 is sent to the batch script alone, as
# `#SBATCH --signal=B:USR1@...` does.
#   test_slurm.sh <repository> {requeue|no_requeue|finished|restart_sweep|generate}
set -u
repo=$1
case_name=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/log" ] && cat "$tmp/log" >&2; exit 1; }

mkdir -p "$tmp/bin"
printf '#!/bin/bash\nexec "$@"\n' > "$tmp/bin/srun"
printf '#!/bin/bash\necho "scontrol $*" >> "%s/calls"\n' "$tmp" > "$tmp/bin/scontrol"
# The program: records its arguments, then either ends with $STANDIN_RC or waits for USR1 and
# exits with $STANDIN_USR1_RC.
cat > "$tmp/dynae" <<STANDIN
#!/bin/bash
echo "dynae \$*" >> "$tmp/calls"
if [ -n "\${STANDIN_RC:-}" ]; then exit "\$STANDIN_RC"; fi
trap 'echo "dynae got USR1" >> "$tmp/calls"; exit "\$STANDIN_USR1_RC"' USR1
echo \$\$ > "$tmp/started"
while :; do sleep 0.05; done
STANDIN
# shellcheck disable=SC2016  # the stand-in's own variables
printf '#!/bin/bash\necho "python $*" >> "%s/calls"\nwhile [ $# -gt 0 ]; do [ "$1" = --out ] && : > "$2"; shift; done\n' "$tmp" > "$tmp/python"
chmod +x "$tmp/bin/srun" "$tmp/bin/scontrol" "$tmp/dynae" "$tmp/python"
: > "$tmp/data.h5"
: > "$tmp/calls"

# Runs the job script in the background with the stand-ins; sets $job.
start_job() {
  env PATH="$tmp/bin:$PATH" DYNAE="$tmp/dynae" DY_PYTHON="$tmp/python" DYNAE_HOME="$repo" \
      DATA="${DATA:-$tmp/data.h5}" SLURM_JOB_ID=4242 "$@" \
      bash "$repo/jobs/three-well.slurm" --set train.epochs=3 > "$tmp/log" 2>&1 &
  job=$!
}
# Waits for the stand-in program to start, sends USR1 to the batch script, returns its exit code.
signal_job() {
  for _ in $(seq 200); do [ -f "$tmp/started" ] && break; sleep 0.05; done
  [ -f "$tmp/started" ] || fail "the program did not start"
  kill -USR1 "$job"
  for _ in $(seq 200); do kill -0 "$job" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$job" 2>/dev/null; then
    kill "$(cat "$tmp/started")" "$job" 2>/dev/null
    fail "the job did not end within 10 s of USR1"
  fi
  wait "$job"
}
calls() { cat "$tmp/calls"; }

case $case_name in
  requeue)  # the program checkpoints and exits 3: forwarded, requeued
    start_job STANDIN_USR1_RC=3
    signal_job; rc=$?
    [ "$rc" = 3 ] || fail "exit code $rc, expected 3"
    calls | grep -q "dynae got USR1" || fail "USR1 was not forwarded to the program"
    calls | grep -qx "scontrol requeue 4242" || fail "the job was not requeued"
    calls | grep -q -- "--restart" && fail "a first run must not restart"
    calls | grep -qx "dynae inputs/three-well.toml --set train.epochs=3" || fail "arguments: $(calls)" ;;
  no_requeue)  # any other exit code after USR1 (here: diverged) is not requeued
    start_job STANDIN_USR1_RC=4
    signal_job; rc=$?
    [ "$rc" = 4 ] || fail "exit code $rc, expected 4"
    calls | grep -q "dynae got USR1" || fail "USR1 was not forwarded to the program"
    calls | grep -q scontrol && fail "requeued after exit code 4" ;;
  finished)  # normal end, and bad input: passed through, no requeue
    for want in 0 2; do
      start_job STANDIN_RC=$want
      wait "$job"; rc=$?
      [ "$rc" = "$want" ] || fail "exit code $rc, expected $want"
    done
    calls | grep -q scontrol && fail "requeued a finished job"
    calls | grep -q python && fail "generated data that exists" ;;
  restart_sweep)  # requeued array task: its sweep line, its own folder, --restart
    printf 'loss.beta=1\nloss.beta=100 cluster.d_min=4\n' > "$tmp/sweep"
    start_job STANDIN_RC=0 SLURM_RESTART_COUNT=1 SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=1 SWEEP="$tmp/sweep"
    wait "$job"; rc=$?
    [ "$rc" = 0 ] || fail "exit code $rc"
    want="dynae inputs/three-well.toml --set train.epochs=3 --set loss.beta=100 --set cluster.d_min=4"
    want="$want --set output.dir=\"$repo/results/three-well-77/task1\" --restart"
    calls | grep -qxF "$want" || fail "arguments: $(calls), expected $want"
    start_job STANDIN_RC=0 SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=2 SWEEP="$tmp/sweep"
    wait "$job"; rc=$?
    [ "$rc" = 2 ] || fail "a task without a sweep line: exit code $rc, expected 2" ;;
  generate)  # absent data are generated before the run
    DATA="$tmp/new.h5" start_job STANDIN_RC=0
    wait "$job"; rc=$?
    [ "$rc" = 0 ] || fail "exit code $rc"
    calls | grep -qx "python tools/gen_three_well.py --out $tmp/new.h5" || fail "calls: $(calls)"
    [ "$(calls | head -1 | cut -d' ' -f1)" = python ] || fail "the data were not made first" ;;
  *) echo "usage: $0 <repository> {requeue|no_requeue|finished|restart_sweep|generate}" >&2; exit 2 ;;
esac
echo "$case_name: ok"
