"""SSM ListCommandInvocations, which moto (5.2.1) does not implement: one call for the state of a
command on every instance it was sent to, as AWS answers it (without `Details`: no plugin output; with
it, each plugin's output cut to 2,500 characters as AWS cuts it). Invocations are the ones moto_ext's
agents update as they run the scripts."""

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


def install():
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
