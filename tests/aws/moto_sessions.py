"""Session Manager sessions for moto, which has none (installed by moto_ext.install()):

  * StartSession (Target, DocumentName, Parameters): the document comes from moto's own SSM backend (it
    must be a Session document; CreateDocument made it), its parameters are substituted into its
    properties (defaults from the document), and the caller's session policy — the `Policy` given to
    AssumeRole for the access key that signs the call — must allow `ssm:StartSession` on both the
    instance's and the document's ARN, conditions included (a call naming no document is checked
    against the default shell document only under `ssm:SessionDocumentAccessCheck`, as AWS does);
    callers without a session policy (the tests' plain credentials) are allowed. It answers SessionId, TokenValue and the gateway's StreamUrl.
  * TerminateSession ends the session: the gateway (ssm_gateway.py) closes the tunnel.
  * DescribeSessions (State Active|History, Filters Target/Owner/Status/SessionId) in AWS's shape.
Every session is recorded (who, which target, which document, bytes carried) for the admin API.
"""

import datetime
import fnmatch
import ipaddress
import json
import re
import secrets
import threading

from moto.core.responses import ActionResult
from moto.ssm.exceptions import AccessDeniedException, InvalidDocument, SSMException, ValidationException
from moto.ssm.models import ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse
from moto.sts.models import sts_backends

from moto_ext import STATE, iso, now, page

ACTIVE = {"Connecting", "Connected"}
FILTER_FIELDS = {"Target": "target", "Owner": "owner", "Status": "status", "SessionId": "id"}
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Session:
    """One session, from StartSession until it ends."""

    def __init__(self, session_id, target, document, parameters, properties, owner, region):
        self.id, self.target, self.document, self.region = session_id, target, document, region
        self.parameters, self.properties, self.owner = parameters, properties, owner
        self.token = secrets.token_urlsafe(32)
        self.start, self.end = now(), None
        self.status, self.reason = "Connecting", ""
        self.bytes_from_client = self.bytes_to_client = 0
        self.terminated_by = []  # the callers of TerminateSession for it, in order

    def active(self):
        return self.status in ACTIVE

    def address(self, port):
        """Where the instance's `port` listens, as its agent registered it ("127.0.0.1:P"), or None."""
        with STATE.cond:
            agent = STATE.agent_for(self.target, self.region)
            return agent.ports.get(str(port)) if agent else None

    def count(self, received=0, sent=0):
        with REGISTRY.lock:
            self.bytes_from_client += received
            self.bytes_to_client += sent
            if self.status == "Connecting":
                self.status = "Connected"

    def ended(self, reason):
        with REGISTRY.lock:
            if self.active():
                self.status, self.reason, self.end = "Terminated", reason, now()

    def describe(self):
        view = {
            "SessionId": self.id, "Target": self.target, "Status": self.status, "StartDate": self.start,
            "DocumentName": self.document, "Owner": self.owner, "Details": self.reason, "OutputUrl": {},
        }
        if self.end:
            view["EndDate"] = self.end
        return view

    def admin_view(self):
        view = {key: value for key, value in self.describe().items() if key not in ("OutputUrl", "Details")}
        view.update(StartDate=iso(self.start), EndDate=iso(self.end) if self.end else None, Reason=self.reason,
                    Parameters=self.parameters, Properties=self.properties,
                    BytesFromClient=self.bytes_from_client, BytesToClient=self.bytes_to_client,
                    TerminatedBy=list(self.terminated_by))
        return view


class Registry:
    """Every session by id, and the gateway that carries their data."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = {}
        self.gateway = None  # set by passport_moto once the gateway listens

    def get(self, session_id):
        with self.lock:
            return self.sessions.get(session_id)

    def add(self, session):
        with self.lock:
            self.sessions[session.id] = session

    def all(self):
        with self.lock:
            return list(self.sessions.values())

    def terminate(self, session):
        session.ended("TerminateSession")
        if self.gateway:
            self.gateway.terminate(session.id)

    def reset(self):
        for session in self.all():
            self.terminate(session)
        with self.lock:
            self.sessions.clear()


REGISTRY = Registry()


# --- the caller: who signs the call, and the session policy of its assumed role ---------------------
def caller(response):
    """(ARN, short name, session policy or None) of the credentials that signed the request."""
    backend = sts_backends[response.current_account]["global"]
    access_key = response.get_access_key()
    _, arn, _ = backend.get_caller_identity(access_key, response.region)
    assumed = backend.get_assumed_role_from_access_key(access_key)
    policy = json.loads(assumed.policy) if assumed and assumed.policy else None
    return arn, arn.rsplit("/", 1)[-1], policy


def listed(value):
    return value if isinstance(value, list) else [value]


def condition_holds(operator, key, expected, context):
    """One condition of a statement; an operator or key this evaluator does not know never holds (so
    an Allow it guards grants nothing)."""
    actual = context.get(key)
    if actual is None:
        return False
    if operator == "Bool":
        return any(str(value).lower() == str(actual).lower() for value in expected)
    if operator == "DateLessThan":
        return any(actual < datetime.datetime.fromisoformat(value.replace("Z", "+00:00")) for value in expected)
    if operator in ("IpAddress", "NotIpAddress"):
        inside = any(ipaddress.ip_address(actual) in ipaddress.ip_network(cidr, strict=False) for cidr in expected)
        return inside == (operator == "IpAddress")
    if operator == "StringEquals":
        return actual in expected
    return False


def statement_applies(statement, action, resource, context):
    actions = listed(statement.get("Action", []))
    if not any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions):
        return False
    if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in listed(statement.get("Resource", []))):
        return False
    return all(
        condition_holds(operator, key, listed(expected), context)
        for operator, keys in (statement.get("Condition") or {}).items()
        for key, expected in keys.items()
    )


def authorize(response, action, resources, context):
    """Raises AccessDeniedException unless the caller's session policy allows `action` on every one of
    `resources` (and denies it on none). Returns the caller's ARN and short name."""
    arn, name, policy = caller(response)
    if policy is None:
        return arn, name
    statements = listed(policy.get("Statement", []))
    for resource in resources:
        effects = {s.get("Effect") for s in statements if statement_applies(s, action, resource, context)}
        if "Deny" in effects or "Allow" not in effects:
            raise AccessDeniedException(
                f"User: {arn} is not authorized to perform: {action} on resource: {resource} because no "
                f"session policy allows the {action} action"
            )
    return arn, name


def request_context():
    """The condition keys of a call. moto listens on loopback only, so every caller comes from there."""
    return {"aws:CurrentTime": now(), "aws:SourceIp": "127.0.0.1", "ssm:SessionDocumentAccessCheck": "true"}


# --- the document: a Session document from moto's backend, its parameters substituted -----------------
def session_properties(backend, name, parameters):
    documents = backend._documents.get(name)
    if documents is None:
        raise InvalidDocument(f"Document with name {name} does not exist.")
    document = documents.find(None, None)
    if document.document_type != "Session":
        raise InvalidDocument(f"Document type must be Session, but {name} is {document.document_type}.")
    declared = document.content_json.get("parameters") or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise SSMException("InvalidParameters", f"Parameters {unknown} are not defined in document {name}.")
    values = {}
    for key, spec in declared.items():
        given = parameters.get(key)
        if given:
            values[key] = listed(given)[0]
        elif "default" in spec:
            values[key] = str(spec["default"])
        else:
            raise SSMException("InvalidParameters", f"Parameter {key} of document {name} is required.")

    def substitute(value):
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), value)
        if isinstance(value, dict):
            return {key: substitute(item) for key, item in value.items()}
        return [substitute(item) for item in value] if isinstance(value, list) else value

    owned_by_aws = name.startswith("AWS-")
    return substitute(document.content_json.get("properties") or {}), owned_by_aws


# --- the operations ----------------------------------------------------------------------------------
def checks_document_access(response):
    """Whether a StartSession that names no document is checked against the default shell document:
    AWS does so only when the caller's policy allows StartSession under the condition
    `ssm:SessionDocumentAccessCheck` true; otherwise the instance alone is authorized and the default
    shell (SSM-SessionManagerRunShell) opens, whatever documents the policy lists."""
    _, _, policy = caller(response)
    if policy is None:
        return False
    return any(
        any(str(value).lower() == "true"
            for value in listed((s.get("Condition") or {}).get("Bool", {}).get("ssm:SessionDocumentAccessCheck", [])))
        for s in listed(policy.get("Statement", []))
        if s.get("Effect") == "Allow"
    )


def start_session(self):
    target = self._get_param("Target")
    named = self._get_param("DocumentName")
    name = named or "SSM-SessionManagerRunShell"
    parameters = self._get_param("Parameters") or {}
    account, region = self.current_account, self.region
    owned_by_aws = name.startswith(("AWS-", "SSM-"))
    document_arn = f"arn:aws:ssm:{region}:{'' if owned_by_aws else account}:document/{name}"
    instance_arn = f"arn:aws:ec2:{region}:{account}:instance/{target}"
    resources = [instance_arn] + ([document_arn] if named or checks_document_access(self) else [])
    owner, short_name = authorize(self, "ssm:StartSession", resources, request_context())
    properties, _ = session_properties(ssm_backends[account][region], name, parameters)
    with STATE.cond:
        if STATE.agent_for(target, region) is None:
            raise SSMException("TargetNotConnected", f"{target} is not connected.")
    session = Session(f"{short_name}-{secrets.token_hex(9)[:17]}", target, name, parameters, properties,
                      owner, region)
    REGISTRY.add(session)
    stream_url = f"ws://127.0.0.1:{REGISTRY.gateway.port}/v1/data-channel/{session.id}?role=publish_subscribe"
    return ActionResult({"SessionId": session.id, "TokenValue": session.token, "StreamUrl": stream_url})


def terminate_session(self):
    session_id = self._get_param("SessionId")
    account, region = self.current_account, self.region
    caller_arn, _ = authorize(self, "ssm:TerminateSession", [f"arn:aws:ssm:{region}:{account}:session/{session_id}"],
                              request_context())
    session = REGISTRY.get(session_id)
    if session is not None:
        with REGISTRY.lock:
            session.terminated_by.append(caller_arn)
        REGISTRY.terminate(session)
    return ActionResult({"SessionId": session_id})


def describe_sessions(self):
    state = self._get_param("State")
    if state not in ("Active", "History"):
        raise ValidationException(
            f"1 validation error detected: Value '{state}' at 'state' failed to satisfy constraint: Member "
            "must satisfy enum value set: [Active, History]"
        )
    sessions = [s for s in REGISTRY.all() if s.region == self.region and s.active() == (state == "Active")]
    for item in self._get_param("Filters") or []:
        field = FILTER_FIELDS.get(item.get("key"))
        if field is None:
            raise ValidationException(f"The filter key {item.get('key')} is not supported by passport_moto")
        sessions = [s for s in sessions if getattr(s, field) == item.get("value")]
    sessions.sort(key=lambda s: s.start, reverse=True)
    return page(self, "Sessions", [s.describe() for s in sessions], default_size=20)


def install():
    SimpleSystemManagerResponse.start_session = start_session
    SimpleSystemManagerResponse.terminate_session = terminate_session
    SimpleSystemManagerResponse.describe_sessions = describe_sessions


def recorded_sessions():
    """Every session, oldest first, for the admin API."""
    return [session.admin_view() for session in sorted(REGISTRY.all(), key=lambda s: s.start)]
