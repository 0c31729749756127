"""A local Kubernetes API server mock for the adaptor's tests (run by test/k8s/*.sh).

Keeps nodes, pods, service accounts, secrets and PeerPods in memory and checks every request
against the API models of Debian's python3-kubernetes: bodies must deserialize into the
kubernetes.client model of their kind, with no field the model does not know; patches must have
the right content type, and JSON patches are applied operation by operation against the object
(a failed "remove" or "test" is 422, as on a real API server). PeerPods (no model in the
package) are checked against the CRD's schema (WIRE.md 8.7). Finalizers behave like the real
thing: DELETE of an object with finalizers sets deletionTimestamp; removing the last finalizer of
such an object deletes it. Unknown paths answer 404 and unknown verbs 405, as Status objects.

Control endpoints besides mockbase's:
  POST /_mock/objects   {"kind": "pods"|"nodes"|..., "object": {...}}  create or replace
  POST /_mock/delete    {"kind": ..., "namespace": .., "name": ..}     remove at once
  GET  /_mock/state     {"nodes": {...}, "pods": {...}, ...} keyed by "ns/name" (or name)
"""

import copy
import datetime
import json
import os
import re
import sys
import threading
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cloud"))
import mockbase  # noqa: E402
from mockbase import Reply  # noqa: E402

from kubernetes import client as k8s  # noqa: E402

API = k8s.ApiClient()
PEERPOD_GROUP = "confidentialcontainers.org"
PEERPOD_VERSION = "v1alpha1"
MODELS = {"nodes": "V1Node", "pods": "V1Pod", "serviceaccounts": "V1ServiceAccount",
          "secrets": "V1Secret"}
KINDS = {"nodes": "Node", "pods": "Pod", "serviceaccounts": "ServiceAccount",
         "secrets": "Secret", "peerpods": "PeerPod"}
NAMESPACED = {"pods", "serviceaccounts", "secrets", "peerpods"}
QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]i?|Ki)?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Invalid(Exception):
    def __init__(self, message, code=422, reason="Invalid"):
        super().__init__(message)
        self.code = code
        self.reason = reason


def status(code, reason, message):
    return Reply(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": message, "reason": reason,
                        "code": code})


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def strip_none(x):
    if isinstance(x, dict):
        return {k: strip_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [strip_none(v) for v in x]
    return x


def check_model(obj, model):
    """obj must deserialize into the model and survive a round trip unchanged (no unknown
    field, no wrong type)."""
    try:
        m = API._ApiClient__deserialize(copy.deepcopy(obj), model)
    except Exception as e:  # the models raise ValueError/TypeError
        raise Invalid(f"{model}: {e}")
    back = strip_none(API.sanitize_for_serialization(m))
    # the models turn timestamps into datetimes; compare without them
    if normalise(back) != normalise(strip_none(obj)):
        raise Invalid(f"{model}: fields the model does not know or of the wrong type: "
                      f"{json.dumps(diff(strip_none(obj), back))}")


def normalise(x):
    if isinstance(x, dict):
        return {k: normalise(v) for k, v in x.items()}
    if isinstance(x, list):
        return [normalise(v) for v in x]
    if isinstance(x, str) and re.match(r"^\d{4}-\d\d-\d\dT", x):
        return "<time>"
    return x


def diff(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: diff(a[k], b.get(k)) for k in a if normalise(a[k]) != normalise(b.get(k))}
    return a


def check_peerpod(obj):
    if obj.get("apiVersion") != f"{PEERPOD_GROUP}/{PEERPOD_VERSION}" or obj.get("kind") != "PeerPod":
        raise Invalid("PeerPod: wrong apiVersion or kind", 400, "BadRequest")
    extra = set(obj) - {"apiVersion", "kind", "metadata", "spec", "status"}
    if extra:
        raise Invalid(f"PeerPod: unknown fields {sorted(extra)}")
    check_model(obj.get("metadata", {}), "V1ObjectMeta")
    spec = obj.get("spec", {})
    if not isinstance(spec, dict) or set(spec) - {"cloudProvider", "instanceID"}:
        raise Invalid(f"PeerPod: spec must hold only cloudProvider and instanceID: {spec}")
    for k in ("cloudProvider", "instanceID"):
        if k in spec and not isinstance(spec[k], str):
            raise Invalid(f"PeerPod: spec.{k} must be a string")
    st = obj.get("status", {})
    if not isinstance(st, dict) or set(st) - {"cleand"} or not isinstance(st.get("cleand", False), bool):
        raise Invalid("PeerPod: status must hold only cleand (bool)")


def pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise Invalid(f"invalid JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def walk(doc, tokens):
    cur = doc
    for t in tokens:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise Invalid(f"the path {'/'.join(tokens)!r} does not exist")
    return cur


def json_patch(doc, ops):
    """RFC 6902, as the API server applies it (add/remove/replace/test/move/copy)."""
    if not isinstance(ops, list):
        raise Invalid("a JSON patch is a list of operations", 400, "BadRequest")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or set(op) - {"op", "path", "value", "from"}:
            raise Invalid(f"invalid operation {op!r}", 400, "BadRequest")
        kind, toks = op.get("op"), pointer(op.get("path", ""))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise Invalid(f"{kind} needs a value", 400, "BadRequest")
        if not toks:
            raise Invalid("operations on the whole document are not supported")
        parent, last = walk(doc, toks[:-1]), toks[-1]
        if kind == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            elif isinstance(parent, dict):
                parent[last] = op["value"]
            else:
                raise Invalid("add into a scalar")
        elif kind in ("remove", "replace"):
            walk(parent, [last])
            if kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            else:
                parent[int(last) if isinstance(parent, list) else last] = op["value"]
        elif kind == "test":
            if walk(parent, [last]) != op["value"]:
                raise Invalid(f"test failed at {op['path']}")
        else:
            raise Invalid(f"unsupported op {kind!r}", 400, "BadRequest")
    return doc


def merge_patch(doc, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class KubeMock(mockbase.Mock):
    def __init__(self, args):
        super().__init__(args)
        self.store = {k: {} for k in KINDS}
        self.rv = 1
        self.token_file = args.token_file

    # ---- storage ----
    @staticmethod
    def key(kind, ns, name):
        return f"{ns}/{name}" if kind in NAMESPACED else name

    def stamp(self, obj):
        self.rv += 1
        md = obj.setdefault("metadata", {})
        md["resourceVersion"] = str(self.rv)
        md.setdefault("uid", str(uuid.uuid4()))
        md.setdefault("creationTimestamp", now())

    def state(self):
        return copy.deepcopy(self.store)

    def control(self, req):
        if req.path == "/_mock/objects" and req.method == "POST":
            b = json.loads(req.body)
            kind, obj = b["kind"], b["object"]
            md = obj["metadata"]
            with self.lock:
                self.stamp(obj)
                self.store[kind][self.key(kind, md.get("namespace"), md["name"])] = obj
            return Reply(200, obj)
        if req.path == "/_mock/delete" and req.method == "POST":
            b = json.loads(req.body)
            with self.lock:
                self.store[b["kind"]].pop(self.key(b["kind"], b.get("namespace"), b["name"]), None)
            return Reply(204)
        return super().control(req)

    # ---- requests ----
    def authorised(self, req):
        if not self.token_file:
            return True
        with open(self.token_file) as f:
            tokens = {t.strip() for t in f if t.strip()}
        h = req.header("Authorization", "")
        return h.startswith("Bearer ") and h[7:] in tokens

    def api(self, req):
        if not self.authorised(req):
            return status(401, "Unauthorized", "Unauthorized")
        try:
            with self.lock:
                return self.route(req)
        except Invalid as e:
            return status(e.code, e.reason, str(e))

    def route(self, req):
        p = req.path.rstrip("/").split("/")[1:]
        q = dict(kv.split("=", 1) for kv in req.query.split("&") if "=" in kv) if req.query else {}
        q = {k: urllib_unquote(v) for k, v in q.items()}
        # /api/v1/nodes/<n>[/status]
        if p[:3] == ["api", "v1", "nodes"] and len(p) in (4, 5):
            if len(p) == 5 and p[4] != "status":
                return status(404, "NotFound", "no such subresource")
            return self.object(req, "nodes", None, p[3], subresource=p[4] if len(p) == 5 else None)
        # /api/v1/pods (all namespaces, field selector)
        if p == ["api", "v1", "pods"]:
            if req.method != "GET":
                return status(405, "MethodNotAllowed", f"{req.method} is not allowed here")
            return self.list("pods", None, q)
        # /api/v1/namespaces/<ns>/<kind>/<name>
        if p[:3] == ["api", "v1", "namespaces"] and len(p) == 6 and p[4] in ("pods", "serviceaccounts", "secrets"):
            if req.method != "GET":
                return status(405, "MethodNotAllowed", f"{req.method} is not allowed in this mock")
            return self.object(req, p[4], p[3], p[5])
        base = ["apis", PEERPOD_GROUP, PEERPOD_VERSION]
        if p[:3] == base:
            rest = p[3:]
            if rest == ["peerpods"]:
                if req.method != "GET":
                    return status(405, "MethodNotAllowed", f"{req.method} is not allowed here")
                return self.list("peerpods", None, q)
            if len(rest) == 3 and rest[0] == "namespaces" and rest[2] == "peerpods":
                if req.method == "POST":
                    return self.create_peerpod(req, rest[1])
                if req.method == "GET":
                    return self.list("peerpods", rest[1], q)
                return status(405, "MethodNotAllowed", f"{req.method} is not allowed here")
            if len(rest) == 4 and rest[0] == "namespaces" and rest[2] == "peerpods":
                return self.object(req, "peerpods", rest[1], rest[3])
        return status(404, "NotFound", f"the server could not find the requested resource ({req.path})")

    def list(self, kind, ns, q):
        items = [o for o in self.store[kind].values()
                 if ns is None or o["metadata"].get("namespace") == ns]
        for sel in filter(None, q.get("labelSelector", "").split(",")):
            if "=" not in sel:
                raise Invalid(f"unsupported label selector {sel!r}", 400, "BadRequest")
            k, v = sel.split("=", 1)
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
        for sel in filter(None, q.get("fieldSelector", "").split(",")):
            k, v = sel.split("=", 1)
            if k != "spec.nodeName":
                raise Invalid(f"unsupported field selector {k!r}", 400, "BadRequest")
            items = [o for o in items if o.get("spec", {}).get("nodeName") == v]
        api_version = "v1" if kind != "peerpods" else f"{PEERPOD_GROUP}/{PEERPOD_VERSION}"
        return Reply(200, {"kind": KINDS[kind] + "List", "apiVersion": api_version,
                           "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    def body_json(self, req):
        try:
            return json.loads(req.body)
        except ValueError as e:
            raise Invalid(f"invalid JSON body: {e}", 400, "BadRequest")

    def validate(self, kind, obj):
        if kind == "peerpods":
            check_peerpod(obj)
        else:
            check_model(obj, MODELS[kind])

    def create_peerpod(self, req, ns):
        ct = req.header("Content-Type", "")
        if ct.split(";")[0].strip() != "application/json":
            return status(415, "UnsupportedMediaType", f"unsupported content type {ct!r}")
        obj = self.body_json(req)
        check_peerpod(obj)
        md = obj.setdefault("metadata", {})
        if md.get("namespace", ns) != ns:
            raise Invalid("the namespace of the object does not match the request", 400, "BadRequest")
        md["namespace"] = ns
        name = md.get("name", "")
        if not DNS_SUBDOMAIN.match(name):
            raise Invalid(f"metadata.name {name!r} is not a DNS subdomain")
        key = self.key("peerpods", ns, name)
        if key in self.store["peerpods"]:
            return status(409, "AlreadyExists", f'peerpods.{PEERPOD_GROUP} "{name}" already exists')
        self.stamp(obj)
        self.store["peerpods"][key] = obj
        return Reply(201, obj)

    def object(self, req, kind, ns, name, subresource=None):
        key = self.key(kind, ns, name)
        obj = self.store[kind].get(key)
        if obj is None:
            return status(404, "NotFound", f'{kind} "{name}" not found')
        if req.method == "GET":
            return Reply(200, obj)
        if req.method == "DELETE":
            if kind != "peerpods":
                return status(405, "MethodNotAllowed", "DELETE is not allowed in this mock")
            if obj["metadata"].get("finalizers"):
                obj["metadata"].setdefault("deletionTimestamp", now())
                self.stamp(obj)
                return Reply(200, obj)
            del self.store[kind][key]
            return Reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if req.method != "PATCH" or kind not in ("nodes", "peerpods"):
            return status(405, "MethodNotAllowed", f"{req.method} is not allowed here")
        ct = req.header("Content-Type", "").split(";")[0].strip()
        body = self.body_json(req)
        if ct == "application/merge-patch+json":
            new = merge_patch(obj, body)
        elif ct == "application/json-patch+json":
            new = json_patch(obj, body)
        else:
            return status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json ({ct!r})")
        if new.get("metadata", {}).get("name") != name:
            raise Invalid("metadata.name cannot change")
        # a subresource keeps only its part; the main resource ignores status
        if subresource == "status":
            kept = copy.deepcopy(obj)
            kept["status"] = new.get("status", {})
            new = kept
        elif kind == "nodes":
            new["status"] = copy.deepcopy(obj.get("status", {}))
        if kind == "nodes":
            for k, v in (new.get("status", {}).get("capacity") or {}).items():
                if not isinstance(v, str) or not QUANTITY.match(v):
                    raise Invalid(f"status.capacity[{k}]: {v!r} is not a quantity")
        self.validate(kind, new)
        self.stamp(new)
        if kind == "peerpods" and new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            del self.store[kind][key]
        else:
            self.store[kind][key] = new
        return Reply(200, new)


def urllib_unquote(s):
    from urllib.parse import unquote
    return unquote(s)


def main():
    p = mockbase.main_args("Kubernetes API server mock")
    p.add_argument("--token-file", help="accepted bearer tokens, one a line (re-read per request)")
    args = p.parse_args()
    mockbase.serve(KubeMock(args))


if __name__ == "__main__":
    main()
