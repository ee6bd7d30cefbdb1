#!/usr/bin/env python3
"""moto's server, extended for passport (see moto_ext.py), plus a small admin API for the tests.

    passport_moto.py --port 0 --admin-port 0

prints one JSON line when ready, {"endpoint": "http://127.0.0.1:P", "admin": "http://127.0.0.1:A",
"gateway": "ws://127.0.0.1:G"} (G: the Session Manager data channel, ssm_gateway.py), and exits when its stdin closes (so it dies with the test process that holds the pipe) or on SIGTERM.

PASSPORT_MOTO_REQUEST_LOG=0 leaves moto's line per request out of the log (the bench sets it).

Admin API (JSON in and out):
  POST   /agents          {"instanceId", "platform": "Linux"|"Windows", "runner": [argv...]|null,
                           "region": null (any) or "us-east-1"..., "info": {DescribeInstanceInformation
                           fields to override}, "ports": {"22": "127.0.0.1:P", ...}: where the
                           instance's ports listen, for Session Manager sessions}: an SSM agent comes
                           online for that instance
  GET    /agents          the registered agents
  DELETE /agents/<id>     the agent goes offline
  GET    /commands        every SendCommand moto accepted, with each invocation's status and output
  POST   /faults          {"operation": "SendCommand"|"AssumeRole"|...|"*", "count": N}: the next N calls
                           of that operation (or of any SSM/STS operation) are throttled
  GET    /faults          {"remaining": {operation: N}, "served": {operation: N}, "servedTotal": N}
  DELETE /faults          no more throttling (the served counts stay)
  GET    /assumed-roles   every AssumeRole call: RoleArn, RoleSessionName, ExternalId, Policy, ...
  GET    /sessions        every Session Manager session: SessionId, Target, DocumentName, Parameters,
                           Owner, Status, StartDate, EndDate, Reason, BytesFromClient, BytesToClient,
                           TerminatedBy (the callers of TerminateSession)
  POST   /agents/<id>/refuse  the agent stays listed Online but SendCommand refuses it (InvalidInstanceId)
  POST   /kill-after-send {"pid": P | "pidFile": path, "nth": N, "commentContains": "..."}: the N-th
                           SendCommand from now whose comment contains the text (any when empty) SIGKILLs
                           P (or the pid in the file then) right after it is recorded, before moto answers
  GET    /kill-after-send every hook: pid, remaining, fired, commandId (of the command that fired it), error
  POST   /reset           forgets all of the above and resets moto's backends
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.moto_api._internal import moto_api_backend
from moto.server import ThreadedMotoServer

import moto_ext
import moto_sessions
import ssm_gateway
from moto_ext import STATE, Agent


class AdminError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def register_agent(body):
    instance_id, platform = body.get("instanceId"), body.get("platform", "Linux")
    runner = body.get("runner")
    if not isinstance(instance_id, str) or not instance_id:
        raise AdminError(400, "instanceId is required")
    if platform not in ("Linux", "Windows"):
        raise AdminError(400, f"platform must be Linux or Windows, not {platform!r}")
    valid_runner = isinstance(runner, list) and runner and all(isinstance(arg, str) for arg in runner)
    if runner is not None and not valid_runner:
        raise AdminError(400, "runner must be null or a non-empty list of strings")
    ports = body.get("ports") or {}
    if not isinstance(ports, dict) or not all(isinstance(v, str) and ":" in v for v in ports.values()):
        raise AdminError(400, 'ports must map a port to an address, {"22": "127.0.0.1:P"}')
    agent = Agent(instance_id, platform, runner, body.get("region"), body.get("info") or {})
    agent.ports = {str(port): address for port, address in ports.items()}
    with STATE.cond:
        previous = STATE.agents.get(instance_id)
        if previous:
            previous.stop()
        STATE.agents[instance_id] = agent
    agent.start()
    return agent.admin_view()


def remove_agent(instance_id):
    with STATE.cond:
        agent = STATE.agents.pop(instance_id, None)
        if agent is None:
            raise AdminError(404, f"no agent for {instance_id}")
        agent.stop()
    return {"removed": instance_id}


def refuse_commands(instance_id):
    with STATE.cond:
        agent = STATE.agents.get(instance_id)
        if agent is None:
            raise AdminError(404, f"no agent for {instance_id}")
        agent.refuses_commands = True
    return {"refusing": instance_id}


def kill_after_send(body):
    pid, pid_file = body.get("pid"), body.get("pidFile")
    nth, contains = body.get("nth", 1), body.get("commentContains", "")
    valid_target = (isinstance(pid, int) and pid > 1) or (pid is None and isinstance(pid_file, str) and pid_file)
    if not valid_target or not isinstance(nth, int) or nth < 1 or not isinstance(contains, str):
        raise AdminError(400, 'expected {"pid": P > 1 | "pidFile": path, "nth": N >= 1, "commentContains": "..."}')
    return moto_ext.add_kill_hook(pid, pid_file, nth, contains)


def set_faults(body):
    operation, count = body.get("operation"), body.get("count", 1)
    if not isinstance(operation, str) or not isinstance(count, int) or count < 0:
        raise AdminError(400, 'expected {"operation": "SendCommand" or "*", "count": N >= 0}')
    with STATE.cond:
        STATE.faults[operation] = STATE.faults.get(operation, 0) + count
    return faults()


def clear_faults():
    with STATE.cond:
        STATE.faults.clear()
    return faults()


def faults():
    with STATE.cond:
        remaining = {operation: n for operation, n in STATE.faults.items() if n > 0}
        served = dict(STATE.served)
    return {"remaining": remaining, "served": served, "servedTotal": sum(served.values())}


def agents():
    with STATE.cond:
        return [agent.admin_view() for agent in STATE.agents.values()]


def assumed_roles():
    with STATE.cond:
        return list(STATE.assumed_roles)


def reset():
    STATE.reset()
    moto_sessions.REGISTRY.reset()
    moto_api_backend.reset()
    return {"reset": True}


ROUTES = {
    ("POST", "/agents"): register_agent,
    ("GET", "/agents"): lambda _: agents(),
    ("GET", "/commands"): lambda _: moto_ext.recorded_commands(),
    ("POST", "/faults"): set_faults,
    ("GET", "/faults"): lambda _: faults(),
    ("DELETE", "/faults"): lambda _: clear_faults(),
    ("GET", "/assumed-roles"): lambda _: assumed_roles(),
    ("GET", "/sessions"): lambda _: moto_sessions.recorded_sessions(),
    ("POST", "/reset"): lambda _: reset(),
    ("POST", "/kill-after-send"): kill_after_send,
    ("GET", "/kill-after-send"): lambda _: moto_ext.kill_hooks(),
}


class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            path = self.path.rstrip("/") or "/"
            if self.command == "POST" and path.startswith("/agents/") and path.endswith("/refuse"):
                status, answer = 200, refuse_commands(path.removeprefix("/agents/").removesuffix("/refuse"))
            elif self.command == "DELETE" and path.startswith("/agents/"):
                status, answer = 200, remove_agent(path.removeprefix("/agents/"))
            elif (self.command, path) in ROUTES:
                status, answer = 200, ROUTES[(self.command, path)](body)
            else:
                raise AdminError(404, f"no route {self.command} {path}")
        except AdminError as err:
            status, answer = err.status, {"error": str(err)}
        except (ValueError, AttributeError, TypeError) as err:
            status, answer = 400, {"error": f"bad request: {err}"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = handle_any

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logging.getLogger("admin").info(format, *args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="moto's port (0: any free port)")
    parser.add_argument("--admin-port", type=int, default=0, help="the admin API's port (0: any free port)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if os.environ.get("PASSPORT_MOTO_REQUEST_LOG") == "0":
        # The bench: a line per request costs moto more than many of the requests do.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    moto_ext.install()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    moto.start()
    gateway = moto_sessions.REGISTRY.gateway = ssm_gateway.Gateway(moto_sessions.REGISTRY)
    gateway.start()
    admin = ThreadingHTTPServer(("127.0.0.1", args.admin_port), AdminHandler)
    admin.daemon_threads = True
    threading.Thread(target=admin.serve_forever, daemon=True, name="admin").start()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=wait_for_eof, args=(done,), daemon=True).start()

    _, port = moto.get_host_and_port()
    ready = {
        "endpoint": f"http://127.0.0.1:{port}",
        "admin": f"http://127.0.0.1:{admin.server_address[1]}",
        "gateway": f"ws://127.0.0.1:{gateway.port}",
    }
    print(json.dumps(ready), flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    admin.shutdown()
    moto.stop()
    # Daemon threads (agents, request handlers) may still run; skip an interpreter finalization they
    # could trip over. Runners still running die with us (see moto_ext.die_with_parent).
    sys.stdout.flush()
    os._exit(0)


def wait_for_eof(done):
    """Reads stdin until EOF: the pipe closes when the process that started us exits, however it exits.
    (os.read, not sys.stdin, whose buffer lock a daemon thread must not hold at shutdown.)"""
    while os.read(0, 4096):
        pass
    done.set()


if __name__ == "__main__":
    main()
