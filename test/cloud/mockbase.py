"""Shared machinery of the cloud mocks (ARM, EC2): a threaded HTTP server on 127.0.0.1, a
request log, injected faults and latency, and "VMs" booted as real processes.

A mock subclasses MockHandler and implements api(req) -> Reply. Tests steer it through
/_mock/ endpoints (never faulted, never logged):

  POST /_mock/faults    JSON list of rules, appended:
                        {"method": "PUT", "path": "regex", "status": 429, "headers": {..},
                         "body": "..", "count": 2}          answer with this instead
                        {"path": "...", "drop": true, "count": 1}   close without answering
                        {"path": "...", "delay_ms": 3000, "count": 1}  extra latency
  POST /_mock/latency   {"ms": 200}: every API call waits this long first
  GET  /_mock/requests  the log: [{"method", "path", "query", "headers", "body", "status"}]
  GET  /_mock/state     the mock's resources (mock-defined JSON)
  POST /_mock/reset     clear log and faults (resources stay)

A fault rule with "count" fires that many times; without it, forever. Instance addresses come
from 127.2.0.0/16, so nothing in a test dials a real private or public address.
"""

import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Reply:
    def __init__(self, status=200, body=b"", headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if body and content_type and "Content-Type" not in self.headers:
            self.headers["Content-Type"] = content_type


class Request:
    def __init__(self, method, target, headers, body):
        u = urlsplit(target)
        self.method = method
        self.target = target
        self.path = u.path
        self.query = u.query
        self.headers = headers  # an email.message.Message: case-insensitive get()
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name, default)


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.latency_ms = 0

    def add(self, rules):
        with self.lock:
            for r in rules:
                r = dict(r)
                r["_re"] = re.compile(r.get("path", ".*"))
                self.rules.append(r)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, method, path):
        """The first rule matching this call, consumed once; None if none."""
        with self.lock:
            for r in self.rules:
                if r.get("method") and r["method"] != method:
                    continue
                if not r["_re"].search(path):
                    continue
                if "count" in r:
                    if r["count"] <= 0:
                        continue
                    r["count"] -= 1
                return r
        return None


class AddressPool:
    """Distinct 127.2.x.y addresses for instances."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next = 1

    def take(self):
        with self.lock:
            while True:
                n = self.next
                self.next += 1
                x, y = (n >> 8) & 0xFF, n & 0xFF
                if y not in (0, 255):
                    return f"127.2.{x}.{y}"


class VMBooter:
    """Boots a "VM" as processes, the way a pod VM starts: process-user-data fetches the user
    data from the mock's IMDS (an endpoint URL given per VM) and writes apf.json under the VM's
    folder, then agent-protocol-forwarder listens on the VM's address with that apf.json and
    relays to the agent stand-in. Without --process-user-data the mock boots nothing."""

    def __init__(self, args):
        self.pud = args.process_user_data
        self.forwarder = args.forwarder
        self.agent_socket = args.agent_socket
        self.port = args.forwarder_port
        self.root = args.vm_dir
        self.provider = None  # "azure" or "aws", set by the mock
        self.env_name = None  # AZURE_IMDS_ENDPOINT or AWS_EC2_METADATA_SERVICE_ENDPOINT
        self.lock = threading.Lock()
        self.procs = {}

    @property
    def enabled(self):
        return bool(self.pud and self.forwarder and self.root)

    def boot(self, name, ip, imds_url):
        """Start the VM's processes in the background; returns immediately."""
        if not self.enabled:
            return
        threading.Thread(target=self._boot, args=(name, ip, imds_url), daemon=True).start()

    def _boot(self, name, ip, imds_url):
        d = os.path.join(self.root, name)
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ)
        env[self.env_name] = imds_url
        log = open(os.path.join(d, "boot.log"), "ab")
        r = subprocess.run(
            [self.pud, "provision-files", "-provider", self.provider, "-output-root", d, "-t", "30"],
            env=env, stdout=log, stderr=log)
        if r.returncode != 0:
            return
        argv = [self.forwarder, "-listen", f"{ip}:{self.port}",
                "-config", os.path.join(d, "run/peerpod/apf.json")]
        if self.agent_socket:
            argv += ["-kata-agent-socket", self.agent_socket]
        with self.lock:
            if name in self.procs and self.procs[name] is None:
                return  # deleted while booting
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log,
                                                start_new_session=True)

    def kill(self, name):
        with self.lock:
            p = self.procs.get(name)
            self.procs[name] = None
        if p is not None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def kill_all(self):
        with self.lock:
            names = list(self.procs)
        for n in names:
            self.kill(n)


class MockHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mock = None  # the Mock instance, set by serve()

    def log_message(self, fmt, *args):
        if self.mock.verbose:
            sys.stderr.write("mock: " + fmt % args + "\n")

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, reply):
        self.send_response(reply.status)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _handle(self):
        body = self._read_body()
        req = Request(self.command, self.path, self.headers, body)
        m = self.mock
        if req.path.startswith("/_mock/"):
            self._send(m.control(req))
            return
        if m.faults.latency_ms:
            time.sleep(m.faults.latency_ms / 1000)
        rule = m.faults.take(req.method, req.path)
        entry = {
            "method": req.method, "path": req.path, "query": req.query,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"), "status": None,
        }
        if rule and rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000)
            rule = None
        if rule and rule.get("drop"):
            entry["status"] = "dropped"
            m.log(entry)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if rule:
            reply = Reply(rule.get("status", 500), rule.get("body", ""), rule.get("headers"),
                          rule.get("content_type", "application/json"))
        else:
            try:
                reply = m.api(req)
            except Exception as e:  # a mock bug must show, not hang the client
                reply = Reply(599, {"mock_error": repr(e)})
                sys.stderr.write(f"mock: {req.method} {req.path}: {e!r}\n")
        entry["status"] = reply.status
        m.log(entry)
        self._send(reply)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


class Mock:
    """Base of a cloud mock: subclasses implement api(req) and state()."""

    def __init__(self, args):
        self.args = args
        self.verbose = args.verbose
        self.faults = Faults()
        self.faults.latency_ms = args.latency_ms
        self.addresses = AddressPool()
        self.vms = VMBooter(args)
        self.lock = threading.RLock()
        self.requests = []
        self.port = 0

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def log(self, entry):
        with self.lock:
            self.requests.append(entry)

    def api(self, req):
        return Reply(404, {"error": "not found"})

    def state(self):
        return {}

    def control(self, req):
        body = json.loads(req.body or b"null")
        if req.path == "/_mock/faults" and req.method == "POST":
            self.faults.add(body if isinstance(body, list) else [body])
            return Reply(204)
        if req.path == "/_mock/latency" and req.method == "POST":
            self.faults.latency_ms = int(body.get("ms", 0))
            return Reply(204)
        if req.path == "/_mock/requests":
            with self.lock:
                return Reply(200, list(self.requests))
        if req.path == "/_mock/state":
            with self.lock:
                return Reply(200, self.state())
        if req.path == "/_mock/reset" and req.method == "POST":
            with self.lock:
                self.requests = []
            self.faults.clear()
            return Reply(204)
        return Reply(404, {"error": "unknown control path"})


def add_common_args(p):
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--port-file", help="write the chosen port here once listening")
    p.add_argument("--latency-ms", type=int, default=0, help="latency of every API call")
    p.add_argument("--process-user-data", help="boot VMs: process-user-data binary")
    p.add_argument("--forwarder", help="boot VMs: agent-protocol-forwarder binary")
    p.add_argument("--agent-socket", help="boot VMs: the agent stand-in's socket")
    p.add_argument("--forwarder-port", type=int, default=15150)
    p.add_argument("--vm-dir", help="boot VMs: folder for the VMs' files")
    p.add_argument("--verbose", action="store_true")


def serve(mock, handler_class=MockHandler):
    """Run until SIGTERM/SIGINT; kills the VMs it booted on the way out."""
    cls = type("Handler", (handler_class,), {"mock": mock})
    srv = ThreadingHTTPServer(("127.0.0.1", mock.args.port), cls)
    srv.daemon_threads = True
    mock.port = srv.server_address[1]

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if mock.args.port_file:
        tmp = mock.args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(mock.port))
        os.rename(tmp, mock.args.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        mock.vms.kill_all()


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def main_args(description):
    p = argparse.ArgumentParser(description=description)
    add_common_args(p)
    return p
