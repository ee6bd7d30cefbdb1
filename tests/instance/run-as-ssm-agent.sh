#!/usr/bin/env bash
# Runs a script inside a test instance the way the Amazon SSM agent runs an AWS-RunShellScript command
# on Linux:
#
#   run-as-ssm-agent.sh HOST_PID INSTANCE_ID SCRIPT_FILE
#
# HOST_PID is the instance's sshd (PID 1 of its PID namespace) as the host sees it, INSTANCE_ID the
# instance's id (checked against the instance, so a recycled PID is never entered), SCRIPT_FILE a
# file on the host holding the commands.
#
# Like the agent, it writes the commands to
#   /var/lib/amazon/ssm/INSTANCE_ID/document/orchestration/COMMAND_ID/awsrunShellScript/0.awsrunShellScript/_script.sh
# (mode 0700, directories 0700, output files 0600) inside the instance and runs `sh -c <that path>` as root in a
# process group of its own, with stdin from /dev/null, stdout and stderr into files `stdout` and
# `stderr` next to the script, the working directory /usr/bin (the agent's systemd unit sets it), and
# the environment of a systemd service plus AWS_SSM_INSTANCE_ID and AWS_SSM_REGION_NAME. The kernel
# honours the script's shebang line, as it does under the agent.
#
# It then prints the script's stdout on stdout and its stderr on stderr (complete; the agent's 24000
# character cut is the caller's business) and exits with the script's exit code (128+N if a signal
# N ended it). A failure of this runner itself prints "run-as-ssm-agent: ..." on stderr and exits
# with 125 before anything ran.
#
# Optional environment: PASSPORT_SSM_COMMAND_ID (default: a fresh UUID), AWS_SSM_REGION_NAME
# (default: us-east-1).
#
# Killing this process (it becomes nsenter) also kills the script's shell, though not what the script
# started in the background, much as the agent leaves such processes alone. Nothing ties it to the
# thread or process that started it: a caller may start it and return (SendCommand is asynchronous).
# Stopping the instance kills whatever still runs inside it.
set -euo pipefail

fail() {
  printf 'run-as-ssm-agent: %s\n' "$*" >&2
  exit 125
}

[[ $# -eq 3 ]] || fail "usage: run-as-ssm-agent.sh HOST_PID INSTANCE_ID SCRIPT_FILE"
pid="$1" id="$2" script="$3"
[[ $pid =~ ^[1-9][0-9]*$ ]] || fail "not a PID: $pid"
[[ $id =~ ^i-[0-9a-f]+$ ]] || fail "not an instance id: $id"
[[ -f $script && -r $script ]] || fail "cannot read the script file $script"
running="$(cat "/proc/$pid/root/run/passport-instance" 2>/dev/null || true)"
[[ $running == "$id" ]] || fail "instance $id is not running (no such instance at PID $pid)"

command_id="${PASSPORT_SSM_COMMAND_ID:-$(cat /proc/sys/kernel/random/uuid)}"
[[ $command_id =~ ^[A-Za-z0-9-]+$ ]] || fail "bad command id: $command_id"
orchestration="/var/lib/amazon/ssm/$id/document/orchestration/$command_id/awsrunShellScript/0.awsrunShellScript"
service_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
region="${AWS_SSM_REGION_NAME:-us-east-1}"

# Inside the instance (its PID, mount, UTS and IPC namespaces and its root): store the script from
# stdin, run it, then hand back its output. Every step up to the script's start exits 125 on failure.
# shellcheck disable=SC2016 # expanded by the shell inside the instance
agent='
dir="$1" id="$2" region="$3" path="$4"
fail() { printf "run-as-ssm-agent: %s\n" "$*" >&2; exit 125; }
umask 022
(umask 077 && mkdir -p -- "$dir") || fail "cannot create $dir in the instance"
(umask 077 && cat >"$dir/_script.sh" && chmod 0700 "$dir/_script.sh" && : >"$dir/stdout" && : >"$dir/stderr") ||
  fail "cannot write the script to $dir in the instance"
cd /usr/bin || fail "no /usr/bin in the instance"
rc=0
setpriv --pdeathsig=KILL -- setsid --wait -- env -i PATH="$path" LANG=C.UTF-8 \
  AWS_SSM_INSTANCE_ID="$id" AWS_SSM_REGION_NAME="$region" \
  sh -c "$dir/_script.sh" "" </dev/null >"$dir/stdout" 2>"$dir/stderr" || rc=$?
cat -- "$dir/stdout"
cat -- "$dir/stderr" >&2
exit "$rc"
'
exec nsenter --target "$pid" --mount --pid --uts --ipc --root --wd -- \
  /usr/bin/setpriv --pdeathsig=KILL -- /usr/bin/env -i PATH="$service_path" \
  /bin/sh -c "$agent" sh "$orchestration" "$id" "$region" "$service_path" <"$script"
