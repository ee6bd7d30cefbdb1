"""passport's extensions to moto, applied in-process to moto's own classes (see `install`).

moto (5.2.1) lacks what passport's end-to-end tests need from SSM Run Command, so this module adds it:
  * SSM DescribeInstanceInformation, answered from the agents the tests registered;
  * SendCommand that AWS-style rejects instances without an online agent and more than 50 instances,
    and whose invocations stay Pending/InProgress until the registered agent has really run the script
    (its exit code, stdout and stderr come back through GetCommandInvocation);
  * throttling injection for any SSM or STS operation, and a record of SendCommand and AssumeRole calls;
  * Session Manager sessions (moto_sessions.py), whose data the gateway carries (ssm_gateway.py).
Everything else is moto's own behaviour and wire format.
"""

import collections
import ctypes
import datetime
import json
import os
import signal
import subprocess
import tempfile
import threading
import uuid

from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.ssm.exceptions import InvalidFilterKey, SSMException, ValidationException
from moto.ssm.models import SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.sts.responses import TokenResponse

OUTPUT_LIMIT = 24000  # GetCommandInvocation returns at most this many characters of each stream
MAX_INSTANCES = 50  # SendCommand's limit on InstanceIds
PLUGINS = {"AWS-RunShellScript": "aws:runShellScript", "AWS-RunPowerShellScript": "aws:runPowerShellScript"}
DOCUMENT_OF = {"Linux": "AWS-RunShellScript", "Windows": "AWS-RunPowerShellScript"}
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class State:
    """What the tests control and read back; one lock guards all of it. Each agent waits on a condition
    of its own on that lock, so a command wakes the one agent it is for, not all of them."""

    def __init__(self):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.reset()

    def reset(self):
        with self.cond:
            for agent in getattr(self, "agents", {}).values():
                agent.stop()
            self.agents = {}  # instance id -> Agent
            self.commands = []  # (account, region, instance ids as sent, moto Command), oldest first
            # instance id -> (moto Command, invocation dict) not yet taken by its agent, oldest first
            self.queue = collections.defaultdict(collections.deque)
            self.faults = {}  # operation or "*" -> throttled answers still to give
            self.served = {}  # operation -> throttled answers given
            self.assumed_roles = []
            self.kill_hooks = []  # see add_kill_hook
            self.cond.notify_all()

    def agent_for(self, instance_id, region):
        agent = self.agents.get(instance_id)
        return agent if agent and agent.region in (None, region) else None

    def take_fault(self, operation):
        with self.cond:
            for key in (operation, "*"):
                if self.faults.get(key, 0) > 0:
                    self.faults[key] -= 1
                    self.served[operation] = self.served.get(operation, 0) + 1
                    return True
            return False


STATE = State()


# The bench's runner: an agent that answers every command at once, in this process (starting a
# process per command would make the emulator, not the operator, what the bench measures). It prints
# what a Linux provisioning prints for the operator to read: the host keys between the markers.
INSTANT_RUNNER = "passport:instant"
INSTANT_OUTPUT = (
    "--- passport host keys ---\n"
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFMueTztjy086QjLEkNT8l+8DQXMj+QJ7fEiqGRhVFzM bench-host\n"
    "--- end host keys ---\n"
)


class Agent(threading.Thread):
    """A registered SSM agent: Online while registered, it runs the commands sent to its instance one at
    a time, as the real agent does, by handing the script file to the runner command given at
    registration. Without a runner it takes commands and leaves them InProgress (e.g. Windows here)."""

    def __init__(self, instance_id, platform, runner, region, extra):
        super().__init__(daemon=True, name=f"agent-{instance_id}")
        self.instance_id, self.platform, self.runner, self.region = instance_id, platform, runner, region
        self.extra = extra  # DescribeInstanceInformation fields the test chose
        self.ports = {}  # port on the instance ("22") -> where it listens here ("127.0.0.1:P"), for sessions
        self.stopped = False
        self.wake = threading.Condition(STATE.lock)
        # Listed Online by DescribeInstanceInformation, but SendCommand refuses it with InvalidInstanceId
        # (an agent that deregistered or lost its connection between the two calls).
        self.refuses_commands = False

    def describe(self):
        windows = self.platform == "Windows"
        info = {
            "InstanceId": self.instance_id,
            "PingStatus": "Online",
            "LastPingDateTime": now(),
            "AgentVersion": "3.3.1142.0",
            "IsLatestVersion": True,
            "PlatformType": self.platform,
            "PlatformName": "Microsoft Windows Server 2022 Datacenter" if windows else "Debian GNU/Linux",
            "PlatformVersion": "10.0.20348" if windows else "12",
            "ResourceType": "EC2Instance",
            "IPAddress": "10.0.0.10",
            "ComputerName": f"EC2AMAZ-{self.instance_id[-7:].upper()}" if windows else "ip-10-0-0-10.local",
            "AssociationStatus": "Success",
        }
        info.update(self.extra)
        return info

    def stop(self):
        """Goes offline (called with STATE's lock held)."""
        self.stopped = True
        self.wake.notify()

    def admin_view(self):
        view = {key: value for key, value in self.describe().items() if key != "LastPingDateTime"}
        return {**view, "runner": self.runner, "region": self.region, "ports": self.ports}

    def run(self):
        while True:
            with STATE.cond:
                job = self._next_job()
                while job is None and not self.stopped:
                    self.wake.wait()
                    job = self._next_job()
                if self.stopped:
                    return  # gone offline: what it has not taken stays Pending, as with AWS
                command, invocation = job
                STATE.queue[self.instance_id].popleft()
                start = now()
                invocation.update(Status="InProgress", StatusDetails="InProgress")
                invocation["ExecutionStartDateTime"] = iso(start)
                command.status = command.status_details = "InProgress"
            if self.runner is None:
                continue  # nothing can run it here: it stays InProgress
            result = self._execute(command)
            with STATE.cond:
                end = now()
                invocation.update(result, ExecutionEndDateTime=iso(end))
                invocation["ExecutionElapsedTime"] = f"PT{(end - start).total_seconds():.3f}S"
                settle(command)

    def _next_job(self):
        jobs = STATE.queue.get(self.instance_id)
        return jobs[0] if jobs else None

    def _execute(self, command):
        if command.document_name != DOCUMENT_OF[self.platform]:
            reason = f"passport_moto: a {self.platform} agent does not run {command.document_name}\n"
            return outcome("Failed", 1, "", reason)
        if self.runner == [INSTANT_RUNNER]:
            return outcome("Success", 0, INSTANT_OUTPUT, "")
        lines = command.parameters.get("commands", [])
        timeout = float((command.parameters.get("executionTimeout") or ["3600"])[0])
        suffix = ".ps1" if self.platform == "Windows" else ".sh"
        with tempfile.TemporaryDirectory(prefix=f"passport-ssm-{command.command_id}-") as workdir:
            script = os.path.join(workdir, "_script" + suffix)
            with open(script, "w") as file:
                file.write("\n".join(lines) + "\n")
            os.chmod(script, 0o700)
            try:
                process = subprocess.Popen(
                    [*self.runner, script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=workdir, preexec_fn=die_with_parent, start_new_session=True,
                )
            except OSError as err:
                return outcome("Failed", 1, "", f"passport_moto: cannot start runner {self.runner}: {err}\n")
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The agent kills the script's whole process tree (children too would keep the pipes open).
                os.killpg(process.pid, signal.SIGKILL)
                out, err = process.communicate()
                return outcome("TimedOut", -1, out, err, details="ExecutionTimedOut")
        code = process.returncode if process.returncode >= 0 else 128 - process.returncode
        return outcome("Success" if code == 0 else "Failed", code, out, err)


def die_with_parent():
    """Runs in the runner's child before exec: the kernel kills it if the launcher dies (the parent is
    the agent's thread, which outlives the run it waits for)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def text(data):
    return (data.decode(errors="replace") if isinstance(data, bytes) else data)[:OUTPUT_LIMIT]


def outcome(status, code, out, err, details=None):
    return {
        "Status": status,
        "StatusDetails": details or status,
        "ResponseCode": code,
        "StandardOutputContent": text(out),
        "StandardErrorContent": text(err),
    }


def settle(command):
    """The command's own status and counts once invocations finish, as ListCommands reports them."""
    statuses = [invocation["Status"] for invocation in command.invocations]
    command.completed_count = sum(status in TERMINAL for status in statuses)
    command.error_count = sum(status in ("Failed", "TimedOut") for status in statuses)
    if command.completed_count == len(statuses):
        command.status = command.status_details = "Success" if command.error_count == 0 else "Failed"


# --- SSM SendCommand: AWS's validation, then invocations that wait for the agent ----------------------
_moto_send_command = SimpleSystemManagerBackend.send_command


def send_command(self, **kwargs):
    instance_ids = list(kwargs.get("instance_ids") or [])  # moto reorders the list it is given
    if len(instance_ids) > MAX_INSTANCES:
        raise ValidationException(
            f"1 validation error detected: Value '{instance_ids}' at 'instanceIds' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_INSTANCES}"
        )
    with STATE.cond:
        offline = [
            i for i in instance_ids
            if STATE.agent_for(i, self.region_name) is None or STATE.agents[i].refuses_commands
        ]
        if offline:
            raise SSMException(
                "InvalidInstanceId",
                f"Instances [[{', '.join(offline)}]] not in a valid state for account {self.account_id}",
            )
        # AWS-RunShellScript's document declares Linux and MacOS only (AWS-RunPowerShellScript also
        # declares Linux; the agent then needs pwsh, which a Linux agent here reports as a failed run).
        windows = [i for i in instance_ids if STATE.agents[i].platform == "Windows"]
        if kwargs.get("document_name") == "AWS-RunShellScript" and windows:
            raise SSMException(
                "UnsupportedPlatformType",
                "The platform type of the targeted instance(s) is not supported by the document.",
            )
        # moto marks every invocation Success with empty output at once; real ones start Pending.
        command = _moto_send_command(self, **kwargs)
        command.status = command.status_details = "Pending"
        command.completed_count = 0
        for invocation in command.invocations:
            invocation.update(
                outcome("Pending", -1, "", ""),
                PluginName=PLUGINS.get(command.document_name, "aws:runShellScript"),
                ExecutionStartDateTime="", ExecutionEndDateTime="", ExecutionElapsedTime="",
            )
            STATE.queue[invocation["InstanceId"]].append((command, invocation))
        STATE.commands.append((self.account_id, self.region_name, instance_ids, command))
        fire_kill_hooks(command)
        for instance_id in instance_ids:
            STATE.agents[instance_id].wake.notify()
    return command


# --- crash injection: SIGKILL a process right after a SendCommand was accepted -------------------------
def add_kill_hook(pid, pid_file, nth, comment_contains):
    """Arms a hook: the `nth` SendCommand from now whose comment contains `comment_contains` (any when
    empty) SIGKILLs `pid` (or the pid written in `pid_file` at that moment) once it is recorded, before
    moto answers, so the caller never learns the command id of a command that will run. Returns the
    hook's admin view."""
    with STATE.cond:
        hook = {"id": len(STATE.kill_hooks) + 1, "pid": pid, "pidFile": pid_file, "remaining": nth,
                "commentContains": comment_contains or "", "fired": False, "commandId": None, "error": None,
                "alreadyGone": False}
        STATE.kill_hooks.append(hook)
        return dict(hook)


def fire_kill_hooks(command):
    """Called with STATE.cond held, after `command` was recorded and queued."""
    for hook in STATE.kill_hooks:
        if hook["fired"] or hook["commentContains"] not in (command.comment or ""):
            continue
        hook["remaining"] -= 1
        if hook["remaining"] > 0:
            continue
        hook["fired"], hook["commandId"] = True, command.command_id
        try:
            if hook["pidFile"]:
                with open(hook["pidFile"]) as file:
                    hook["pid"] = int(file.read().strip())
            os.kill(hook["pid"], signal.SIGKILL)
        except ProcessLookupError:
            hook["alreadyGone"] = True  # killed by someone else since: it cannot record the command either
        except (OSError, ValueError) as err:
            hook["error"] = str(err)


def kill_hooks():
    with STATE.cond:
        return [dict(hook) for hook in STATE.kill_hooks]


# --- SSM DescribeInstanceInformation, which moto does not implement ----------------------------------
FILTER_FIELDS = {
    "InstanceIds": "InstanceId", "PlatformTypes": "PlatformType", "PingStatus": "PingStatus",
    "ResourceType": "ResourceType", "AgentVersion": "AgentVersion",
}


def describe_instance_information(self):
    filters = [(f["key"], f["valueSet"]) for f in self._get_param("InstanceInformationFilterList") or []]
    filters += [(f["Key"], f["Values"]) for f in self._get_param("Filters") or []]
    # Only the agents asked for by id are described (describing all of them was most of the call).
    by_id = [set(values) for key, values in filters if key == "InstanceIds"]
    ids = set.intersection(*by_id) if by_id else None
    with STATE.cond:
        infos = [
            agent.describe() for agent in STATE.agents.values()
            if agent.region in (None, self.region) and (ids is None or agent.instance_id in ids)
        ]
    for key, values in filters:
        if key not in FILTER_FIELDS:
            raise InvalidFilterKey(f"The filter key {key} is not supported by passport_moto")
        infos = [info for info in infos if info[FILTER_FIELDS[key]] in values]
    return page(self, "InstanceInformationList", infos)


def page(response, key, items, default_size=50):
    """One page of `items` under `key`, as AWS pages: MaxResults (default `default_size`) from
    NextToken."""
    start = int(response._get_param("NextToken") or 0)
    end = start + int(response._get_param("MaxResults") or default_size)
    result = {key: items[start:end]}
    if end < len(items):
        result["NextToken"] = str(end)
    return ActionResult(result)


# --- throttling injection, before moto sees the call -------------------------------------------------
def throttled(service, operation):
    request_id = str(uuid.uuid4())
    if service == "sts":  # query protocol: XML error document, code "Throttling"
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>{request_id}"
            "</RequestId></ErrorResponse>"
        )
        return 400, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body
    body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"})
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "x-amzn-ErrorType": "ThrottlingException",
        "x-amzn-RequestId": request_id,
    }
    return 400, headers, body


def with_faults(response_class, service):
    original = response_class.call_action

    def call_action(self):
        operation = self._get_action()
        if STATE.take_fault(operation):
            return throttled(service, operation)
        return original(self)

    response_class.call_action = call_action


# --- STS AssumeRole: record exactly what was asked -----------------------------------------------------
_moto_assume_role = TokenResponse.assume_role


def assume_role(self):
    result = _moto_assume_role(self)
    params = ["RoleArn", "RoleSessionName", "ExternalId", "Policy", "DurationSeconds", "PolicyArns", "Tags",
              "TransitiveTagKeys", "SourceIdentity"]
    record = {name: self._get_param(name) for name in params}
    record["DurationSeconds"] = self._get_int_param("DurationSeconds")
    record["CallerAccount"] = self.current_account
    record["AccessKeyId"] = result.result["Credentials"].access_key_id
    record["AssumedRoleArn"] = result.result["AssumedRoleUser"]["Arn"]
    record["Time"] = iso(now())
    with STATE.cond:
        STATE.assumed_roles.append(record)
    return result


# --- moto's dispatcher, memoized ------------------------------------------------------------------------
def memoize_backend_lookup():
    """moto finds the backend for each request by listing its modules and matching the host against
    every service's URL patterns, under a lock: more CPU than most calls themselves. The answer for a
    host never changes, so it is kept."""
    original = DomainDispatcherApplication.get_backend_for_host
    found = {}

    def get_backend_for_host(self, host):
        if host not in found:
            found[host] = original(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


def install():
    memoize_backend_lookup()
    SimpleSystemManagerBackend.send_command = send_command
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    TokenResponse.assume_role = assume_role
    with_faults(SimpleSystemManagerResponse, "ssm")
    with_faults(TokenResponse, "sts")
    import moto_invocations  # it imports this module's STATE
    import moto_sessions

    moto_invocations.install()
    moto_sessions.install()


def recorded_commands():
    """Every SendCommand moto accepted, with each invocation's current state, for the admin API."""
    with STATE.cond:
        return [
            {
                "commandId": command.command_id,
                "accountId": account,
                "region": region,
                "instanceIds": instance_ids,
                "documentName": command.document_name,
                "comment": command.comment,
                "parameters": command.parameters,
                "timeoutSeconds": command.timeout_seconds,
                "requestedDateTime": iso(command.requested_date_time.replace(tzinfo=datetime.timezone.utc)),
                "status": command.status,
                "invocations": [
                    {key[0].lower() + key[1:]: value for key, value in invocation.items()}
                    for invocation in command.invocations
                ],
            }
            for account, region, instance_ids, command in STATE.commands
        ]

