"""The Session Manager data channel for the tests: a WebSocket server that AWS's real
session-manager-plugin connects to with the StreamUrl and token StartSession answered (moto_sessions.py),
speaking what the plugin expects of the service and the SSM agent behind it:

  * the opening text message carries the session's token, checked before anything else;
  * every later message is a binary ClientMessage (`encode`/`decode`, the plugin's src/message);
  * the gateway sends a HandshakeRequest (AgentVersion, and the SessionType "Port" action with the
    document's properties, parameters substituted), reads the HandshakeResponse and sends
    HandshakeComplete;
  * it acknowledges every input_stream_data, drops duplicates by sequence number and reorders early
    ones, numbers its output_stream_data, resends output the plugin has not acknowledged, and sends
    channel_closed when the target connection ends or the session is terminated.

Then it carries the bytes to the instance's port (the agent's `ports` map: "22" -> "127.0.0.1:P"): for
properties without `type`, one TCP connection fed by the plugin's stdin/stdout (ssh's ProxyCommand);
for `type: LocalPortForwarding` the plugin multiplexes local connections with smux v1 (xtaci/smux,
because the agents report a version above 3.0.196.0), and the gateway opens one TCP connection per
smux stream.
"""

import asyncio
import hashlib
import json
import logging
import struct
import threading
import time
import uuid

import websockets
from websockets.protocol import State

AGENT_VERSION = "3.3.1142.0"  # what the registered agents report; above 3.0.196.0 the plugin uses smux
HEADER_LENGTH = 116  # the ClientMessage header, up to (not including) the payload length field
CHUNK = 4096  # bytes read from a target connection per output message
RESEND_AFTER = 0.5  # seconds before unacknowledged output is sent again
FLUSH_TIMEOUT = 10  # seconds a closing channel waits for the plugin to acknowledge its last output
MAX_IN_FLIGHT = 1000  # unacknowledged output messages before the gateway stops reading targets

# Payload types and flags (src/message/clientmessage.go).
OUTPUT, HANDSHAKE_REQUEST, HANDSHAKE_RESPONSE, HANDSHAKE_COMPLETE, FLAG = 1, 5, 6, 7, 10
DISCONNECT_TO_PORT, TERMINATE_SESSION = 1, 2
# smux v1 commands (github.com/xtaci/smux frame.go): version, command, length LE16, stream id LE32.
SMUX_SYN, SMUX_FIN, SMUX_PSH, SMUX_NOP = 0, 1, 2, 3
SMUX_HEADER = struct.Struct("<BBHI")
SMUX_MAX_FRAME = 32768

log = logging.getLogger("ssm-gateway")


def encode(message_type, sequence, payload_type, payload, flags=0, message_id=None):
    """One ClientMessage as the plugin's SerializeClientMessage lays it out: the type padded with
    spaces to 32 bytes, big-endian integers, the message id as its two 64-bit halves swapped (least
    significant first), and the payload's SHA-256."""
    message_id = (message_id or uuid.uuid4()).bytes
    header = struct.pack(
        ">I32sIQqQ8s8s32sII",
        HEADER_LENGTH, message_type.encode().ljust(32, b" "), 1, int(time.time() * 1000), sequence, flags,
        message_id[8:], message_id[:8], hashlib.sha256(payload).digest(), payload_type, len(payload),
    )
    return header + payload


def decode(data):
    """The fields of a ClientMessage (the inverse of `encode`); ValueError when it is malformed or its
    digest does not match its payload."""
    if len(data) < HEADER_LENGTH + 4:
        raise ValueError(f"a ClientMessage of {len(data)} bytes is shorter than its header")
    fields = struct.unpack_from(">I32sIQqQ8s8s32sII", data)
    header_length, message_type, _, _, sequence, flags, low, high, digest, payload_type, length = fields
    payload = data[header_length + 4:]
    if len(payload) != length or (length and hashlib.sha256(payload).digest() != digest):
        raise ValueError("the payload does not match its length or digest")
    return {
        "type": message_type.rstrip(b" \x00").decode(), "sequence": sequence, "flags": flags,
        "id": uuid.UUID(bytes=high + low), "payloadType": payload_type, "payload": payload,
    }


class Gateway:
    """The server, on its own asyncio loop in a daemon thread. `sessions` is moto_sessions' registry:
    `sessions.get(id)` gives the session record (token, properties, target address, counters)."""

    def __init__(self, sessions):
        self.sessions = sessions
        self.channels = {}  # session id -> Channel, while its plugin is connected
        self.loop = asyncio.new_event_loop()
        self.port = None

    def start(self):
        """Starts serving on a free loopback port; returns it."""
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True, name="ssm-gateway").start()
        started.wait()
        return self.port

    def _run(self, started):
        asyncio.set_event_loop(self.loop)

        async def serve():
            server = await websockets.serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            await server.serve_forever()

        self.loop.run_until_complete(serve())

    def terminate(self, session_id):
        """Ends the session's tunnel from any thread: its target connections close, the plugin gets
        channel_closed."""
        channel = self.channels.get(session_id)
        if channel:
            asyncio.run_coroutine_threadsafe(channel.close("terminated"), self.loop)

    async def _handle(self, websocket):
        path = websocket.request.path.split("?")[0]
        session = self.sessions.get(path.rsplit("/", 1)[-1])
        try:
            opening = json.loads(await websocket.recv())
        except (ValueError, websockets.ConnectionClosed):
            return
        if session is None or opening.get("TokenValue") != session.token or not session.active():
            log.info("refused a data channel for %s: unknown session or wrong token", path)
            await websocket.close(1008, "invalid token")
            return
        channel = Channel(websocket, session)
        self.channels[session.id] = channel
        try:
            await channel.run()
        finally:
            self.channels.pop(session.id, None)
            await channel.close("the plugin disconnected")


class Channel:
    """One plugin's data channel for one session."""

    def __init__(self, websocket, session):
        self.websocket, self.session = websocket, session
        self.out_sequence = 0  # the next output_stream_data's sequence number
        self.in_sequence = 0  # the next input_stream_data expected
        self.early = {}  # input that arrived ahead of its turn, by sequence number
        self.unacknowledged = {}  # output sequence number -> (encoded message, time last sent)
        self.send_lock = asyncio.Lock()
        self.acknowledged = asyncio.Event()
        self.target = None  # Target (standard streams) or Mux (port forwarding), after the handshake
        self.closed = False

    async def run(self):
        properties = self.session.properties
        handshake = {
            "AgentVersion": AGENT_VERSION,
            "RequestedClientActions": [{
                "ActionType": "SessionType",
                "ActionParameters": {"SessionType": "Port", "Properties": properties},
            }],
        }
        await self.send_output(HANDSHAKE_REQUEST, json.dumps(handshake).encode())
        resender = asyncio.create_task(self.resend())
        try:
            async for data in self.websocket:
                if isinstance(data, bytes):
                    await self.receive(decode(data))
        except (websockets.ConnectionClosed, ValueError) as err:
            log.info("session %s: data channel ended: %s", self.session.id, err)
        finally:
            resender.cancel()

    async def receive(self, message):
        if message["type"] == "acknowledge":
            content = json.loads(message["payload"])
            self.unacknowledged.pop(content.get("AcknowledgedMessageSequenceNumber"), None)
            self.acknowledged.set()
            return
        if message["type"] != "input_stream_data":
            return
        sequence = message["sequence"]
        await self.send_message(encode("acknowledge", 0, 0, json.dumps({
            "AcknowledgedMessageType": "input_stream_data",
            "AcknowledgedMessageId": str(message["id"]),
            "AcknowledgedMessageSequenceNumber": sequence,
            "IsSequentialMessage": True,
        }).encode(), flags=3))
        if sequence < self.in_sequence:
            return  # a resend of what was already carried
        self.early[sequence] = message
        while self.in_sequence in self.early:
            await self.process(self.early.pop(self.in_sequence))
            self.in_sequence += 1

    async def process(self, message):
        kind, payload = message["payloadType"], message["payload"]
        if kind == HANDSHAKE_RESPONSE:
            await self.send_output(HANDSHAKE_COMPLETE, json.dumps(
                {"HandshakeTimeToComplete": 1000000, "CustomerMessage": ""}).encode())
            port = self.session.properties.get("portNumber", "")
            if self.session.properties.get("type") == "LocalPortForwarding":
                self.target = Mux(self, port)
            else:
                self.target = Target(self, port, stream_id=None)
                asyncio.create_task(self.target.run())
        elif kind == OUTPUT and self.target:
            self.session.count(received=len(payload))
            await self.target.feed(payload)
        elif kind == FLAG and len(payload) == 4:
            flag = struct.unpack(">I", payload)[0]
            if flag == TERMINATE_SESSION:
                await self.close("the plugin ended the session")
            elif flag == DISCONNECT_TO_PORT and isinstance(self.target, Target):
                await self.target.close()

    async def send_output(self, payload_type, payload):
        """Sends one output_stream_data, numbered, and keeps it until the plugin acknowledges it."""
        while len(self.unacknowledged) >= MAX_IN_FLIGHT and not self.closed:
            self.acknowledged.clear()
            await self.acknowledged.wait()
        async with self.send_lock:
            data = encode("output_stream_data", self.out_sequence, payload_type, payload)
            self.unacknowledged[self.out_sequence] = (data, time.monotonic())
            self.out_sequence += 1
            await self.websocket.send(data)
        if payload_type == OUTPUT:
            self.session.count(sent=len(payload))

    async def send_message(self, data):
        async with self.send_lock:
            await self.websocket.send(data)

    async def resend(self):
        """What the agent does too: output the plugin has not acknowledged goes again (the plugin drops
        output that arrives before its streams are set up, and waits for the missing number)."""
        while True:
            await asyncio.sleep(RESEND_AFTER / 2)
            for sequence, (data, sent) in sorted(self.unacknowledged.items()):
                if sequence in self.unacknowledged and time.monotonic() - sent > RESEND_AFTER:
                    self.unacknowledged[sequence] = (data, time.monotonic())
                    await self.send_message(data)

    async def close(self, reason, flush=False):
        """Ends the tunnel once: target connections close, the plugin gets channel_closed. With
        `flush`, only after the plugin has acknowledged all output (the plugin exits on channel_closed,
        so output it dropped and is still to get again would be lost)."""
        if self.closed:
            return
        self.closed = True
        log.info("session %s: closing: %s", self.session.id, reason)
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while flush and self.unacknowledged and self.websocket.state is State.OPEN and time.monotonic() < deadline:
            self.acknowledged.clear()
            try:
                await asyncio.wait_for(self.acknowledged.wait(), RESEND_AFTER)
            except asyncio.TimeoutError:
                pass
        self.acknowledged.set()
        self.session.ended(reason)
        if self.target:
            await self.target.close()
        closed = {
            "MessageId": str(uuid.uuid4()), "CreatedDate": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "DestinationId": self.session.target, "SessionId": self.session.id,
            "MessageType": "channel_closed", "SchemaVersion": 1, "Output": "",
        }
        try:
            async with self.send_lock:
                await self.websocket.send(encode("channel_closed", self.out_sequence, 0, json.dumps(closed).encode()))
            await self.websocket.close()
        except websockets.ConnectionClosed:
            pass


async def connect(session, port):
    """A connection to the instance's `port`, at the address its agent registered for it."""
    address = session.address(port)
    if address is None:
        raise OSError(f"the agent of {session.target} registered no address for port {port}")
    host, _, number = address.rpartition(":")
    return await asyncio.open_connection(host, int(number))


class Target:
    """One TCP connection to the instance: the session's standard streams, or one smux stream
    (`stream_id`) of a port-forwarding session."""

    def __init__(self, channel, port, stream_id):
        self.channel, self.port, self.stream_id = channel, port, stream_id
        self.pending = asyncio.Queue()  # bytes for the target (None: the other side is done writing)
        self.writer = None

    async def run(self):
        session = self.channel.session
        try:
            reader, self.writer = await connect(session, self.port)
        except OSError as err:
            log.info("session %s: cannot reach port %s: %s", session.id, self.port, err)
            await self.finish()
            return
        pump = asyncio.create_task(self.pump())
        try:
            while data := await reader.read(CHUNK):
                await self.to_plugin(data)
        except (ConnectionError, OSError):
            pass
        pump.cancel()
        await self.finish()

    async def pump(self):
        while (data := await self.pending.get()) is not None:
            self.writer.write(data)
            await self.writer.drain()
        if self.writer.can_write_eof():
            self.writer.write_eof()

    async def feed(self, data):
        await self.pending.put(data)

    async def to_plugin(self, data):
        await self.channel.send_output(OUTPUT, data)

    async def finish(self):
        """The target connection ended: the whole session ends (a smux stream overrides this)."""
        await self.channel.close(f"the connection to port {self.port} ended", flush=True)

    async def close(self):
        if self.writer:
            self.writer.close()


class Stream(Target):
    """One smux stream: its data travels in PSH frames, its end is a FIN frame."""

    def __init__(self, mux, stream_id):
        super().__init__(mux.channel, mux.port, stream_id)
        self.mux = mux

    async def to_plugin(self, data):
        for start in range(0, len(data), SMUX_MAX_FRAME):
            await self.mux.send(SMUX_PSH, self.stream_id, data[start:start + SMUX_MAX_FRAME])

    async def finish(self):
        if self.mux.streams.pop(self.stream_id, None):
            await self.mux.send(SMUX_FIN, self.stream_id, b"")


class Mux:
    """The agent's side of the plugin's smux session (server role): a SYN opens a connection to the
    port, PSH carries bytes, FIN ends the stream's writing; NOP keep-alives are ignored."""

    def __init__(self, channel, port):
        self.channel, self.port = channel, port
        self.buffer = b""
        self.streams = {}

    async def feed(self, data):
        self.buffer += data
        while len(self.buffer) >= SMUX_HEADER.size:
            _, command, length, stream_id = SMUX_HEADER.unpack_from(self.buffer)
            if len(self.buffer) < SMUX_HEADER.size + length:
                return
            body = self.buffer[SMUX_HEADER.size:SMUX_HEADER.size + length]
            self.buffer = self.buffer[SMUX_HEADER.size + length:]
            stream = self.streams.get(stream_id)
            if command == SMUX_SYN and stream is None:
                stream = self.streams[stream_id] = Stream(self, stream_id)
                asyncio.create_task(stream.run())
            elif command == SMUX_PSH and stream:
                await stream.feed(body)
            elif command == SMUX_FIN and stream:
                await stream.feed(None)

    async def send(self, command, stream_id, body):
        await self.channel.send_output(OUTPUT, SMUX_HEADER.pack(1, command, len(body), stream_id) + body)

    async def close(self):
        for stream in list(self.streams.values()):
            await stream.close()
        self.streams.clear()
