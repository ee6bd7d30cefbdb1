"""SSM ListCommandInvocations, which moto (5.2.1) does not implement: one call for the state of a
command on every instance it was sent to, as AWS answers it (without `Details`: no plugin output; with
it, each plugin's output cut to 2,500 characters as AWS cuts it). Invocations are the ones moto_ext's
agents update as they run the scripts."""

import threading

from moto.ssm.exceptions import SSMException as RESTError
from moto.ssm.models import SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from moto_ext import STATE, page

DETAILS_OUTPUT_LIMIT = 2500  # ListCommandInvocations' cut of each plugin's output


def _listed(command, invocation, details):
    listed = {
        "CommandId": command.command_id,
        "InstanceId": invocation["InstanceId"],
        "InstanceName": "",
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": command.requested_date_time.isoformat(),
        "Status": invocation["Status"],
        "StatusDetails": invocation["StatusDetails"],
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
    }
    if details:
        listed["CommandPlugins"] = [{
            "Name": invocation.get("PluginName", ""),
            "Status": invocation["Status"],
            "StatusDetails": invocation["StatusDetails"],
            "ResponseCode": invocation.get("ResponseCode", -1),
            "Output": (invocation.get("StandardOutputContent") or "")[:DETAILS_OUTPUT_LIMIT],
        }]
    return listed


def list_command_invocations(self):
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    details = bool(self._get_param("Details"))
    commands = self.ssm_backend.list_commands(command_id, instance_id)
    with STATE.cond:
        listed = [
            _listed(command, invocation, details)
            for command in commands
            for invocation in command.invocations
            if instance_id in (None, invocation["InstanceId"])
        ]
    return page(self, "CommandInvocations", listed)


# moto answers on several threads; one indexes at a time, so none is skipped or listed twice.
_INDEXING = threading.Lock()


def _indexed(backend):
    """moto finds a command by scanning every command ever sent; with the bench's tens of thousands,
    that scan (not the operator) would be what is measured. Indexes, by id and by instance, the
    commands appended since the last look (moto only ever appends to its list)."""
    with _INDEXING:
        index = backend.__dict__.setdefault("_passport_index", {"seen": 0, "ids": {}, "instances": {}})
        new = backend._commands[index["seen"]:]
        for command in new:
            index["ids"][command.command_id] = command
            for instance_id in command.instance_ids:
                index["instances"].setdefault(instance_id, []).append(command)
        index["seen"] += len(new)
        return index


def get_command_by_id(self, command_id):
    command = _indexed(self)["ids"].get(command_id)
    if command is None:
        raise RESTError("InvalidCommandId", "Invalid command id.")
    return command


def get_commands_by_instance_id(self, instance_id):
    return list(_indexed(self)["instances"].get(instance_id, []))


def install():
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
    SimpleSystemManagerBackend.get_command_by_id = get_command_by_id
    SimpleSystemManagerBackend.get_commands_by_instance_id = get_commands_by_instance_id
