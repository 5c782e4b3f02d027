#!/usr/bin/env python3
"""A libzmq peer (through pyzmq, whose wheels bundle libzmq with libsodium,
so CURVE is there) for tests/interop_security.rs and
tests/interop_curve_golden.rs.

One JSON argument describes the peer:
  type       libzmq socket type name ("REQ", "ROUTER", ...)
  bind       endpoint to bind (tcp://127.0.0.1:0) or null
  connect    endpoint to connect to, or null
  options    {"plain_server": 1, "plain_username": "u", "curve_server": 1,
              "curve_secretkey": "<z85>", "curve_publickey": "<z85>",
              "curve_serverkey": "<z85>", "zap_domain": "d",
              "subscribe": "", "routing_id": "x"}
  zap        null (no ZAP handler), or {"plain": {"user": "pass"}} and/or
             {"curve": ["<client public z85>", ...]}; anything else is
             refused with status 400
  action     "echo" (reply to each message with "re" + its frames),
             "send" (send `count` messages of `frames`), "request" (send
             `frames` and print the reply, `count` times), "recv" (print
             `count` messages), "sub" (send `frames` every 20 ms until
             stdin closes: for PUB), "idle" (only report events)
  count      messages for echo/send/recv
  frames     list of hex strings

It prints one line per fact, flushed: "BOUND <endpoint>", "EVENT <name>
<value>" for handshake events, "RECV <hex,hex,...>", "DONE", or "ERROR
<why>". It exits when its action is done and stdin closes (the test
closes it), or after 20 s in any case.
"""

import json
import os
import sys
import threading
import time

try:
    import zmq
    import zmq.utils.z85
    from zmq.utils.monitor import recv_monitor_message
except ImportError as e:  # the test turns this into a failure
    print("ERROR pyzmq missing: %s" % e, flush=True)
    sys.exit(3)

LOCK = threading.Lock()


def say(line):
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


EVENTS = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "HANDSHAKE_SUCCEEDED",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "HANDSHAKE_FAILED_AUTH",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "HANDSHAKE_FAILED_PROTOCOL",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "HANDSHAKE_FAILED_NO_DETAIL",
    zmq.EVENT_DISCONNECTED: "DISCONNECTED",
}


def monitor(mon):
    while True:
        try:
            ev = recv_monitor_message(mon)
        except zmq.ZMQError:
            return
        name = EVENTS.get(ev["event"])
        if name:
            say("EVENT %s %d" % (name, ev["value"]))
        if ev["event"] == zmq.EVENT_MONITOR_STOPPED:
            return


def zap_handler(ctx, rules, ready):
    zap = ctx.socket(zmq.REP)
    zap.linger = 0
    zap.bind("inproc://zeromq.zap.01")
    ready.set()
    while True:
        try:
            req = zap.recv_multipart()
        except zmq.ZMQError:
            return
        version, request_id, _domain, _address, _identity, mechanism = req[:6]
        creds = req[6:]
        ok = False
        user = b""
        if mechanism == b"PLAIN" and "plain" in rules:
            name, password = creds[0].decode(), creds[1].decode()
            ok = rules["plain"].get(name) == password
            user = creds[0]
        elif mechanism == b"CURVE" and "curve" in rules:
            key = zmq.utils.z85.encode(creds[0]).decode()
            ok = key in rules["curve"]
            user = key.encode()
        status = b"200" if ok else b"400"
        text = b"OK" if ok else b"denied"
        zap.send_multipart([version, request_id, status, text, user, b""])


def main():
    spec = json.loads(sys.argv[1])
    ctx = zmq.Context()
    if spec.get("zap") is not None:
        ready = threading.Event()
        threading.Thread(
            target=zap_handler, args=(ctx, spec["zap"], ready), daemon=True
        ).start()
        ready.wait(5)
    sock = ctx.socket(getattr(zmq, spec["type"]))
    sock.linger = 0
    sock.rcvtimeo = 10000
    sock.sndtimeo = 10000
    opts = spec.get("options", {})
    for name in ("plain_server", "curve_server"):
        if name in opts:
            sock.setsockopt(getattr(zmq, name.upper()), int(opts[name]))
    for name in ("plain_username", "plain_password", "zap_domain"):
        if name in opts:
            sock.setsockopt(getattr(zmq, name.upper()), opts[name].encode())
    for name in ("curve_secretkey", "curve_publickey", "curve_serverkey"):
        if name in opts:
            sock.setsockopt(getattr(zmq, name.upper()), opts[name].encode())
    if "routing_id" in opts:
        sock.setsockopt(zmq.ROUTING_ID, opts["routing_id"].encode())
    if "subscribe" in opts:
        sock.setsockopt(zmq.SUBSCRIBE, opts["subscribe"].encode())
    mon = sock.get_monitor_socket()
    threading.Thread(target=monitor, args=(mon,), daemon=True).start()
    if spec.get("bind"):
        sock.bind(spec["bind"])
        say("BOUND %s" % sock.getsockopt(zmq.LAST_ENDPOINT).decode())
    if spec.get("connect"):
        sock.connect(spec["connect"])

    frames = [bytes.fromhex(f) for f in spec.get("frames", [])]
    action = spec["action"]
    count = spec.get("count", 0)
    try:
        if action == "echo":
            for _ in range(count):
                msg = sock.recv_multipart()
                say("RECV " + ",".join(f.hex() for f in msg))
                if spec["type"] == "ROUTER":
                    sock.send_multipart(msg[:1] + [b"re"] + msg[1:])
                else:
                    sock.send_multipart([b"re"] + msg)
        elif action == "send":
            for _ in range(count):
                sock.send_multipart(frames)
        elif action == "request":
            for _ in range(count):
                sock.send_multipart(frames)
                msg = sock.recv_multipart()
                say("RECV " + ",".join(f.hex() for f in msg))
        elif action == "recv":
            for _ in range(count):
                msg = sock.recv_multipart()
                say("RECV " + ",".join(f.hex() for f in msg))
        elif action == "sub":
            stop = threading.Event()
            threading.Thread(
                target=lambda: (sys.stdin.read(), stop.set()), daemon=True
            ).start()
            deadline = time.time() + 20
            while not stop.is_set() and time.time() < deadline:
                sock.send_multipart(frames)
                time.sleep(0.02)
        say("DONE")
    except zmq.ZMQError as e:
        say("ERROR %s" % e)
    # Stay up (for events, and so our side sees no EOF) until the test
    # closes stdin, or 20 s.
    if action != "sub":
        t = threading.Thread(target=sys.stdin.read, daemon=True)
        t.start()
        t.join(20)
    # No orderly teardown: threads blocked in the ZAP and monitor sockets
    # would make ctx.term() wait for ever.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
