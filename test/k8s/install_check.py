"""test/k8s/install_check.py: checks of the rendered install/ overlays, for test/k8s/install-*.sh.

  validate RENDERED OVERLAY      every object against the Kubernetes API models (strict: unknown
                                 or misspelled fields and wrong types are errors), then the
                                 DaemonSet, RBAC, CRD and RuntimeClass contracts of WIRE.md 8.5-8.7
  kustomization DIR              the kustomization files under DIR use only what kustomize v2.0.3
                                 (Debian 12's kubectl 1.20) understands
  env RENDERED OVERLAY OUT       the container environment the kubelet (and the cloud's identity
                                 webhook) would give the adaptor, as OUT/env (NUL-separated
                                 KEY=value) and OUT/expected.json; Secret volumes under OUT/fs
  same A B                       two renderings hold the same objects (kustomize versions)
  adaptor-keys RENDERED PROVIDER ADAPTOR
                                 every ConfigMap/Secret key is a variable the adaptor reads

Run with Debian's interpreter (/usr/bin/python3): python3-kubernetes and python3-yaml.
"""

import base64
import json
import os
import re
import subprocess
import sys

import yaml
from kubernetes import client as k8s

NS = "confidential-containers-system"
errors = []


def fail(msg):
    errors.append(msg)


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def find(docs, kind, name):
    for d in docs:
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    return None


# ---- strict model validation ----

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def model_class(api_version, kind):
    version = api_version.split("/")[-1]
    name = version[0].upper() + version[1:] + kind
    cls = getattr(k8s, name, None)
    if cls is None:
        fail(f"{api_version} {kind}: no model {name} in the Kubernetes client")
    return cls


def check_value(value, typ, path):
    """Walk value as the client type string typ; report unknown fields and wrong types."""
    if typ == "object":  # IntOrString, free-form JSON
        return
    if typ in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[typ]) and not (typ != "bool" and isinstance(value, bool))
        if not ok:
            fail(f"{path}: {value!r} is not a {typ}")
        return
    if typ == "datetime":
        if not isinstance(value, str):
            fail(f"{path}: {value!r} is not a timestamp")
        return
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            fail(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            check_value(v, m.group(1), f"{path}[{i}]")
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            fail(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                fail(f"{path}: key {k!r} is not a string")
            check_value(v, m.group(1), f"{path}.{k}")
        return
    cls = getattr(k8s, typ, None)
    if cls is None:
        fail(f"{path}: unknown model type {typ}")
        return
    if not isinstance(value, dict):
        fail(f"{path}: expected an object ({typ}), got {type(value).__name__}")
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            fail(f"{path}.{key}: unknown field of {typ}")
            continue
        if v is None:
            continue
        check_value(v, cls.openapi_types[attr], f"{path}.{key}")


class Response:
    def __init__(self, obj):
        self.data = json.dumps(obj)


def validate_object(obj):
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    cls = model_class(obj.get("apiVersion", ""), obj.get("kind", ""))
    if cls is None:
        return
    check_value(obj, cls.__name__, where)
    api = k8s.ApiClient()
    try:
        model = api.deserialize(Response(obj), cls.__name__)
    except (ValueError, TypeError) as e:  # required fields, enums
        fail(f"{where}: rejected by the {cls.__name__} model: {e}")
        return
    back = api.sanitize_for_serialization(model)
    if back != obj:
        fail(f"{where}: does not survive {cls.__name__} deserialization:\n"
             f"  rendered: {json.dumps(obj, sort_keys=True)}\n"
             f"  model:    {json.dumps(back, sort_keys=True)}")


# ---- contracts (WIRE.md 8.5-8.7) ----

def expect(cond, msg):
    if not cond:
        fail(msg)


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?", str(q))
    if not m:
        return None
    scale = {None: 1, "m": 1e-3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1e3, "M": 1e6,
             "G": 1e9}
    return float(m.group(1)) * scale[m.group(2)]


HOST_PATHS = {
    # path: (hostPath type, mountPropagation, readOnly)
    "/run/peerpod": (None, None, None),
    "/run/netns": (None, "HostToContainer", None),
    "/run/xtables.lock": ("FileOrCreate", None, None),
    "/lib/modules": (None, None, True),
    "/run/kata-containers/shared/direct-volumes": ("DirectoryOrCreate", None, None),
}


def check_daemonset(docs, overlay):
    ds = find(docs, "DaemonSet", "cloud-api-adaptor-daemonset")
    if ds is None:
        fail("no DaemonSet cloud-api-adaptor-daemonset")
        return
    md = ds["metadata"]
    expect(md.get("namespace") == NS, f"DaemonSet namespace {md.get('namespace')}")
    expect(md.get("labels", {}).get("app") == "cloud-api-adaptor", "DaemonSet label app")
    spec = ds["spec"]
    expect(spec["selector"].get("matchLabels") == {"app": "cloud-api-adaptor"},
           f"selector {spec['selector']}")
    upd = spec.get("updateStrategy", {})
    expect(upd.get("type", "RollingUpdate") == "RollingUpdate", "update strategy")
    ru = upd.get("rollingUpdate", {})
    expect(ru.get("maxUnavailable") == 0 and ru.get("maxSurge") == 1,
           f"rollingUpdate must be maxUnavailable 0, maxSurge 1: {ru}")
    tmpl = spec["template"]
    expect(tmpl["metadata"].get("labels", {}).get("app") == "cloud-api-adaptor", "pod label app")
    pod = tmpl["spec"]
    expect(pod.get("serviceAccountName") == "cloud-api-adaptor", "serviceAccountName")
    sa = find(docs, "ServiceAccount", "cloud-api-adaptor")
    expect(sa is not None and sa["metadata"].get("namespace") == NS,
           "ServiceAccount cloud-api-adaptor in " + NS)
    expect(pod.get("hostNetwork") is True, "hostNetwork must be true")
    expect(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy")
    expect(pod.get("nodeSelector") == {"node.kubernetes.io/worker": ""},
           f"nodeSelector {pod.get('nodeSelector')}")
    cons = pod.get("containers", [])
    expect(len(cons) == 1, "one container")
    c = cons[0]
    expect(c.get("name") == "cloud-api-adaptor-con", f"container name {c.get('name')}")
    sc = c.get("securityContext", {})
    expect(sc.get("privileged") is False, "container must be explicitly not privileged")
    caps = sc.get("capabilities", {})
    expect(sorted(caps.get("add", [])) == ["NET_ADMIN", "SYS_ADMIN"],
           f"capabilities add {caps.get('add')}")
    expect(not pod.get("hostPID") and not pod.get("hostIPC"), "no hostPID/hostIPC")

    env = {e["name"]: e for e in c.get("env", [])}
    for name, field in (("NODE_NAME", "spec.nodeName"), ("POD_UID", "metadata.uid")):
        ref = env.get(name, {}).get("valueFrom", {}).get("fieldRef", {})
        expect(ref.get("fieldPath") == field, f"env {name} from {field}")
    ef = c.get("envFrom", [])
    expect(len(ef) == 2 and ef[0].get("configMapRef", {}).get("name") == "peer-pods-cm"
           and ef[1].get("secretRef", {}).get("name") == "peer-pods-secret",
           f"envFrom must be peer-pods-cm then peer-pods-secret: {ef}")
    for e in ef:
        ref = e.get("configMapRef") or e.get("secretRef") or {}
        expect(not ref.get("optional"), f"envFrom {ref.get('name')} must not be optional")
        expect(not e.get("prefix"), "envFrom without prefix")
    for kind, name in (("ConfigMap", "peer-pods-cm"), ("Secret", "peer-pods-secret")):
        o = find(docs, kind, name)
        expect(o is not None and o["metadata"].get("namespace") == NS,
               f"{kind} {name} in {NS} (overlay {overlay})")

    probe = c.get("startupProbe", {})
    get = probe.get("httpGet", {})
    expect(get.get("host") == "127.0.0.1" and get.get("port") == 8000
           and get.get("path") == "/startup" and get.get("scheme", "HTTP") == "HTTP",
           f"startup probe GET 127.0.0.1:8000/startup: {get}")
    expect(probe.get("initialDelaySeconds") == 20 and probe.get("periodSeconds") == 20
           and probe.get("failureThreshold") == 30, f"startup probe timing {probe}")

    res = c.get("resources", {})
    req, lim = res.get("requests", {}), res.get("limits", {})
    for k in ("cpu", "memory"):
        expect(k in req and k in lim, f"resources: {k} request and limit")
    mem_req, mem_lim = quantity(req.get("memory", "0")), quantity(lim.get("memory", "0"))
    # ~15 MiB RSS with 100 pods: the request covers that, the limit leaves headroom
    expect(mem_req is not None and 16 * 2**20 <= mem_req <= 128 * 2**20,
           f"memory request {req.get('memory')}")
    expect(mem_lim is not None and 64 * 2**20 <= mem_lim <= 1024 * 2**20 and mem_lim >= mem_req,
           f"memory limit {lim.get('memory')}")

    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    for m in c.get("volumeMounts", []):
        expect(m["name"] in vols, f"mount {m['mountPath']}: no volume {m['name']}")
    for v in vols.values():
        hp = v.get("hostPath")
        if hp is not None:
            expect(hp.get("type") not in (None, ""), f"hostPath {hp['path']} has no type")
            mt = [m for m in c.get("volumeMounts", []) if m["name"] == v["name"]]
            expect(len(mt) == 1 and mt[0]["mountPath"] == hp["path"],
                   f"hostPath {hp['path']} mounted at the same path")
    for path, (typ, prop, ro) in HOST_PATHS.items():
        m = mounts.get(path)
        if m is None:
            fail(f"no mount at {path}")
            continue
        hp = vols.get(m["name"], {}).get("hostPath")
        if hp is None or hp.get("path") != path:
            fail(f"{path}: not the host's {path}")
            continue
        if typ:
            expect(hp.get("type") == typ, f"{path}: hostPath type {hp.get('type')}, want {typ}")
        expect(m.get("mountPropagation") == prop,
               f"{path}: mountPropagation {m.get('mountPropagation')}, want {prop}")
        if ro:
            expect(m.get("readOnly") is True, f"{path} read-only")
    for path, m in mounts.items():
        if m.get("mountPropagation") not in (None, "None"):
            expect(path == "/run/netns", f"{path}: only /run/netns propagates")
    certs = mounts.get("/etc/certificates")
    sec = vols.get(certs["name"], {}).get("secret", {}) if certs else {}
    expect(sec.get("secretName") == "certs-for-tls" and sec.get("optional") is True
           and sec.get("defaultMode") == 0o600,
           f"certs-for-tls: optional Secret at /etc/certificates, mode 0600: {sec}")
    ssh = mounts.get("/root/.ssh")
    if overlay == "libvirt":
        sec = vols.get(ssh["name"], {}).get("secret", {}) if ssh else {}
        expect(ssh is not None and ssh.get("readOnly") is True
               and sec.get("secretName") == "ssh-key-secret" and sec.get("defaultMode") == 0o600,
               f"libvirt: ssh-key-secret read-only at /root/.ssh, mode 0600: {ssh} {sec}")
        key = find(docs, "Secret", "ssh-key-secret")
        expect(key is not None and "id_rsa" in (key.get("data") or {}),
               "libvirt: Secret ssh-key-secret with id_rsa")
    else:
        expect(ssh is None, f"{overlay}: no SSH key mount")


# What adaptor/k8s.c calls, nothing more: nodes get/patch, nodes/status patch; pods get/list;
# serviceaccounts get; secrets get; peerpods get/list/create/patch/delete.
RBAC = {
    ("", "nodes"): {"get", "patch"},
    ("", "nodes/status"): {"patch"},
    ("", "pods"): {"get", "list"},
    ("", "serviceaccounts"): {"get"},
    ("", "secrets"): {"get"},
    ("confidentialcontainers.org", "peerpods"): {"get", "list", "create", "patch", "delete"},
}


def check_rbac(docs):
    roles = [d for d in docs if d.get("kind") in ("ClusterRole", "Role")]
    granted = {}
    for r in roles:
        for rule in r.get("rules", []):
            expect(not rule.get("resourceNames") and not rule.get("nonResourceURLs"),
                   f"{r['metadata']['name']}: unexpected rule {rule}")
            for g in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    granted.setdefault((g, res), set()).update(rule.get("verbs", []))
    for key, verbs in granted.items():
        expect("*" not in verbs and key[1] != "*" and key[0] != "*", f"wildcard in RBAC {key}")
    expect(granted == RBAC, "RBAC differs from what the adaptor calls:\n"
           f"  extra:   {sorted((k, sorted(v - RBAC.get(k, set()))) for k, v in granted.items() if v - RBAC.get(k, set()))}\n"
           f"  missing: {sorted((k, sorted(v - granted.get(k, set()))) for k, v in RBAC.items() if v - granted.get(k, set()))}")
    binds = [d for d in docs if d.get("kind") in ("ClusterRoleBinding", "RoleBinding")]
    names = {r["metadata"]["name"] for r in roles}
    for b in binds:
        expect(b["roleRef"]["name"] in names, f"binding to unknown role {b['roleRef']}")
        expect(b.get("subjects") == [{"kind": "ServiceAccount", "name": "cloud-api-adaptor",
                                      "namespace": NS}], f"binding subjects {b.get('subjects')}")
    expect(len(binds) >= 1 and all(b["roleRef"]["name"] in names for b in binds), "role binding")


def check_crd_and_runtimeclass(docs):
    crd = find(docs, "CustomResourceDefinition", "peerpods.confidentialcontainers.org")
    if crd is None:
        fail("no PeerPod CRD")
    else:
        s = crd["spec"]
        n = s["names"]
        expect(crd["apiVersion"] == "apiextensions.k8s.io/v1", "CRD apiextensions v1")
        expect(s["group"] == "confidentialcontainers.org" and n["kind"] == "PeerPod"
               and n["plural"] == "peerpods" and s["scope"] == "Namespaced", f"CRD names {s}")
        vs = [v for v in s["versions"] if v["name"] == "v1alpha1"]
        if len(vs) != 1:
            fail("CRD version v1alpha1")
        else:
            v = vs[0]
            expect(v.get("served") and v.get("storage"), "v1alpha1 served and stored")
            expect(v.get("subresources", {}).get("status") == {}, "status subresource")
            props = v["schema"]["openAPIV3Schema"]["properties"]
            sp = props["spec"]["properties"]
            expect(sp.get("cloudProvider", {}).get("type") == "string"
                   and sp.get("instanceID", {}).get("type") == "string", f"spec schema {sp}")
            st = props["status"]["properties"]
            expect(st.get("cleand", {}).get("type") == "boolean", f"status schema {st}")
    rc = find(docs, "RuntimeClass", "kata-remote")
    if rc is None:
        fail("no RuntimeClass kata-remote")
    else:
        expect(rc["apiVersion"] == "node.k8s.io/v1" and rc.get("handler") == "kata-remote",
               "RuntimeClass handler kata-remote")
        expect(rc.get("overhead", {}).get("podFixed") == {"memory": "120Mi", "cpu": "250m"},
               f"RuntimeClass overhead {rc.get('overhead')}")
        expect(rc.get("scheduling", {}).get("nodeSelector")
               == {"katacontainers.io/kata-runtime": "true"}, "RuntimeClass scheduling")
        expect("namespace" not in rc["metadata"], "RuntimeClass is cluster-scoped: no namespace")
    for d in docs:
        if d["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding",
                         "CustomResourceDefinition", "RuntimeClass"):
            expect("namespace" not in d["metadata"], f"{d['kind']} with a namespace")
        else:
            expect(d["metadata"].get("namespace") == NS,
                   f"{d['kind']}/{d['metadata']['name']} not in {NS}")
    expect(find(docs, "Namespace", NS) is not None, f"Namespace {NS}")


def secret_data(obj):
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def check_overlay_identity(docs, overlay):
    sa = find(docs, "ServiceAccount", "cloud-api-adaptor") or {}
    ann = sa.get("metadata", {}).get("annotations") or {}
    ds = find(docs, "DaemonSet", "cloud-api-adaptor-daemonset") or {}
    labels = ds.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    cm = (find(docs, "ConfigMap", "peer-pods-cm") or {}).get("data") or {}
    sec = secret_data(find(docs, "Secret", "peer-pods-secret") or {})
    provider = overlay.split("-")[0]
    expect(cm.get("CLOUD_PROVIDER") == provider, f"CLOUD_PROVIDER {cm.get('CLOUD_PROVIDER')}")
    for k in sec:
        expect(k not in cm, f"{k} in both the ConfigMap and the Secret")
    if overlay == "azure-workload-identity":
        expect(re.fullmatch(r"[0-9a-f-]{36}", ann.get("azure.workload.identity/client-id", "")),
               "ServiceAccount annotation azure.workload.identity/client-id")
        expect(labels.get("azure.workload.identity/use") == "true",
               'pod label azure.workload.identity/use: "true"')
        expect("AZURE_CLIENT_SECRET" not in sec and "AZURE_CLIENT_SECRET" not in cm,
               "workload identity: no AZURE_CLIENT_SECRET")
    elif overlay == "aws-irsa":
        expect(ann.get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::"),
               "ServiceAccount annotation eks.amazonaws.com/role-arn")
        expect(not any(k.startswith("AWS_ACCESS") or k.startswith("AWS_SECRET") for k in sec),
               "IRSA: no access keys")
    else:
        expect(not any(a.startswith("azure.workload") or a.startswith("eks.") for a in ann),
               f"{overlay}: no identity annotations")
        expect("azure.workload.identity/use" not in labels, f"{overlay}: no identity label")
    if overlay == "azure":
        expect({"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"} <= set(sec),
               "azure: service principal in peer-pods-secret")
    if overlay == "aws":
        expect({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(sec),
               "aws: access keys in peer-pods-secret")


def cmd_validate(rendered, overlay):
    docs = load(rendered)
    for d in docs:
        validate_object(d)
    check_daemonset(docs, overlay)
    check_rbac(docs)
    check_crd_and_runtimeclass(docs)
    check_overlay_identity(docs, overlay)
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    print(f"{overlay}: {len(docs)} objects: {' '.join(kinds)}")


# ---- kustomize v2.0.3 subset ----

V203_KEYS = {"apiVersion", "kind", "bases", "resources", "patchesStrategicMerge",
             "patchesJson6902", "configMapGenerator", "secretGenerator", "generatorOptions",
             "namespace", "namePrefix", "nameSuffix", "commonLabels", "commonAnnotations",
             "images", "vars", "crds"}
GEN_KEYS = {"name", "namespace", "behavior", "literals", "files", "env", "type"}


def cmd_kustomization(top):
    n = 0
    for dirpath, _, files in os.walk(top):
        if "kustomization.yaml" not in files:
            continue
        n += 1
        path = os.path.join(dirpath, "kustomization.yaml")
        with open(path, encoding="utf-8") as f:
            k = yaml.safe_load(f)
        for key in k:
            expect(key in V203_KEYS, f"{path}: {key} is not understood by kustomize v2.0.3")
        for r in k.get("resources", []):
            expect(os.path.isfile(os.path.join(dirpath, r)),
                   f"{path}: resource {r} must be a file for v2.0.3 (directories go in bases)")
        for g in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
            for key in g:
                expect(key in GEN_KEYS, f"{path}: generator {g.get('name')}: {key} is not v2.0.3")
            expect(g.get("namespace") == NS, f"{path}: generator {g.get('name')} namespace")
        if "configMapGenerator" in k or "secretGenerator" in k:
            expect(k.get("generatorOptions", {}).get("disableNameSuffixHash") is True,
                   f"{path}: generated names must stay fixed (disableNameSuffixHash)")
        expect("namespace" not in k, f"{path}: a namespace field would also be put on the "
               "cluster-scoped RuntimeClass by v2.0.3")
    expect(n >= 4, f"only {n} kustomizations under {top}")
    print(f"{n} kustomization files use the v2.0.3 subset")


# ---- the container's environment ----

FIELD_VALUES = {"spec.nodeName": "worker-0", "metadata.uid": "3f1a9c52-7d4e-4b1f-9a0c-5e2d8b6f4a11",
                "metadata.name": "cloud-api-adaptor-daemonset-x7k2p", "metadata.namespace": NS,
                "spec.serviceAccountName": "cloud-api-adaptor", "status.hostIP": "10.0.0.4",
                "status.podIP": "10.0.0.4"}
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def cmd_env(rendered, overlay, out):
    docs = load(rendered)
    ds = find(docs, "DaemonSet", "cloud-api-adaptor-daemonset")
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {}
    # envFrom in order (a later source wins), then env entries (which win over envFrom)
    for e in c.get("envFrom", []):
        prefix = e.get("prefix", "")
        if "configMapRef" in e:
            ref = e["configMapRef"]
            obj = find(docs, "ConfigMap", ref["name"])
            data = (obj or {}).get("data") or {}
        else:
            ref = e["secretRef"]
            obj = find(docs, "Secret", ref["name"])
            data = secret_data(obj or {})
        if obj is None and not ref.get("optional"):
            fail(f"the kubelet would not start the container: {ref['name']} missing")
        for k, v in data.items():
            if ENV_NAME.fullmatch(prefix + k):
                env[prefix + k] = v
            else:
                fail(f"{ref['name']}: {k} is not a valid variable name (the kubelet skips it)")
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = FIELD_VALUES[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            fail(f"env {e['name']}: unsupported source in this test")

    # Secret volumes, with their mode, under out/fs/<mountPath>
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        sv = vols[m["name"]].get("secret")
        if not sv:
            continue
        obj = find(docs, "Secret", sv["secretName"])
        if obj is None:
            continue  # optional and absent: kubelet mounts an empty directory
        d = os.path.join(out, "fs", m["mountPath"].lstrip("/"))
        os.makedirs(d, exist_ok=True)
        for k, v in secret_data(obj).items():
            p = os.path.join(d, k)
            with open(p, "w", encoding="utf-8") as f:
                f.write(v)
            os.chmod(p, sv.get("defaultMode", 0o644))

    # what the clouds' admission webhooks add for the identity overlays
    sa = find(docs, "ServiceAccount", "cloud-api-adaptor")
    ann = sa["metadata"].get("annotations") or {}
    labels = ds["spec"]["template"]["metadata"].get("labels", {})
    tokdir = os.path.join(out, "fs", "var/run/secrets/tokens")
    if labels.get("azure.workload.identity/use") == "true":
        os.makedirs(tokdir, exist_ok=True)
        tok = os.path.join(tokdir, "azure-identity-token")
        with open(tok, "w", encoding="utf-8") as f:
            f.write("eyJhbGciOiJSUzI1NiJ9.e30.sig")
        env.update({"AZURE_CLIENT_ID": ann["azure.workload.identity/client-id"],
                    "AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
                    "AZURE_FEDERATED_TOKEN_FILE": tok,
                    "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/"})
    if "eks.amazonaws.com/role-arn" in ann:
        os.makedirs(tokdir, exist_ok=True)
        tok = os.path.join(tokdir, "eks-token")
        with open(tok, "w", encoding="utf-8") as f:
            f.write("eyJhbGciOiJSUzI1NiJ9.e30.sig")
        env.update({"AWS_ROLE_ARN": ann["eks.amazonaws.com/role-arn"],
                    "AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_STS_REGIONAL_ENDPOINTS": "regional"})
    env["HOME"] = os.path.join(out, "fs", "root")
    with open(os.path.join(out, "env"), "wb") as f:
        for k, v in env.items():
            f.write(f"{k}={v}".encode() + b"\0")
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"provider": env.get("CLOUD_PROVIDER"), "env": env}, f)


def cmd_compare(expected_path, record_dir):
    """The stub adaptor saved argv (record/argv, NUL-separated) and environ (record/env)."""
    with open(expected_path, encoding="utf-8") as f:
        exp = json.load(f)
    with open(os.path.join(record_dir, "argv"), "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open(os.path.join(record_dir, "env"), "rb") as f:
        got = dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if e)
    expect(argv == [exp["provider"]], f"adaptor arguments {argv}, want [{exp['provider']}]")
    for k, v in exp["env"].items():
        expect(got.get(k) == v, f"{k}: the adaptor got {got.get(k)!r}, the manifests say {v!r}")
    print(f"adaptor started as [{' '.join(argv)}] with {len(exp['env'])} variables as rendered")


# ---- variables the adaptor reads ----

# WIRE.md 8.1 (and the environment-only ones); 8.2-8.4 per provider.
WIRE_COMMON = {"REMOTE_HYPERVISOR_ENDPOINT", "PODS_DIR", "PAUSE_IMAGE", "FORWARDER_PORT",
               "CACERT_FILE", "CERT_FILE", "CERT_KEY", "TLS_SKIP_VERIFY", "TLS_MIN_VERSION",
               "TLS_CIPHER_SUITES", "PROXY_TIMEOUT", "TUNNEL_TYPE", "VXLAN_PORT", "INITDATA",
               "CLOUD_CONFIG_VERIFY", "PEERPODS_LIMIT_PER_NODE", "ENABLE_SCRATCH_SPACE",
               "EXTERNAL_NETWORK_VIA_PODVM", "POD_SUBNET_CIDRS", "CLOUD_PROVIDER", "NODE_NAME",
               "POD_UID", "PROBE_PORT", "RUNTIMECLASS_NAME"}
WIRE_PROVIDER = {
    "aws": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
            "PODVM_INSTANCE_TYPE", "PODVM_INSTANCE_TYPES", "PODVM_AMI_ID", "SSH_KP_NAME",
            "AWS_SUBNET_ID", "AWS_SG_IDS", "USE_PODVM_LAUNCHTEMPLATE", "PODVM_LAUNCHTEMPLATE_NAME",
            "USE_PUBLIC_IP", "ROOT_VOLUME_SIZE", "DISABLECVM", "TAGS"},
    "azure": {"AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
              "AZURE_SUBSCRIPTION_ID", "AZURE_REGION", "AZURE_RESOURCE_GROUP",
              "AZURE_INSTANCE_SIZE", "AZURE_INSTANCE_SIZES", "AZURE_SUBNET_ID", "AZURE_NSG_ID",
              "AZURE_IMAGE_ID", "SSH_USERNAME", "DISABLECVM", "ENABLE_SECURE_BOOT",
              "USE_PUBLIC_IP", "ROOT_VOLUME_SIZE", "TAGS"},
    "libvirt": {"LIBVIRT_URI", "LIBVIRT_POOL", "LIBVIRT_NET", "LIBVIRT_VOL_NAME",
                "LIBVIRT_LAUNCH_SECURITY", "LIBVIRT_EFI_FIRMWARE", "LIBVIRT_CPU",
                "LIBVIRT_MEMORY", "LIBVIRT_CPUSET", "LIBVIRT_ROOT_DISK_SIZE", "DISABLECVM"},
}
ENV_ONLY = {"CLOUD_PROVIDER", "POD_UID", "RUNTIMECLASS_NAME"}


def help_sections(adaptor):
    out = subprocess.run([adaptor, "--help"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"^Providers: (.*)$", out, re.M)
    providers = m.group(1).split() if m else []
    sections, cur = {}, "common"
    for line in out.splitlines():
        h = re.match(r"^(\S+) provider flags:", line)
        if h:
            cur = h.group(1)
        # "  -flag (ENV, ...)" and environment-only "  ENV (default ...)"
        for v in re.findall(r"^  (?:-\S+ \()?([A-Z][A-Z0-9_]*)\b", line):
            sections.setdefault(cur, set()).add(v)
    return providers, sections, out


def cmd_adaptor_keys(rendered, provider, adaptor):
    docs = load(rendered)
    cm = (find(docs, "ConfigMap", "peer-pods-cm") or {}).get("data") or {}
    sec = secret_data(find(docs, "Secret", "peer-pods-secret") or {})
    keys = set(cm) | set(sec)
    wire = WIRE_COMMON | WIRE_PROVIDER[provider]
    for k in sorted(keys - wire):
        fail(f"{k}: not a variable of WIRE.md 8.1/8.{ {'aws': 2, 'azure': 3, 'libvirt': 4}[provider] }")
    providers, sections, _ = help_sections(adaptor)
    if provider not in providers:
        print(f"{provider}: not in this build's providers ({' '.join(providers)}): "
              "checked against WIRE.md only")
        return
    reads = sections.get("common", set()) | sections.get(provider, set()) | ENV_ONLY
    for k in sorted(keys - reads):
        fail(f"{k}: the adaptor's {provider} provider does not read it (not in --help)")
    print(f"{provider}: {len(keys)} keys, all read by the adaptor")


def normalized(v):
    """Drop empty maps, lists and nulls: kustomize versions differ in printing them."""
    if isinstance(v, dict):
        v = {k: normalized(x) for k, x in v.items()}
        return {k: x for k, x in v.items() if x not in (None, {}, [])}
    if isinstance(v, list):
        return [normalized(x) for x in v]
    return v


def cmd_same(a, b):
    def key(d):
        return (d["kind"], d["metadata"]["name"])
    def norm(d):
        if d.get("kind") == "Secret" and d.get("data"):  # base64 line wrapping differs
            d = dict(d, data=secret_data(d))
        return normalized(d)
    da = {key(d): norm(d) for d in load(a)}
    db = {key(d): norm(d) for d in load(b)}
    expect(sorted(da) == sorted(db), f"different objects: {sorted(da)} vs {sorted(db)}")
    for k in sorted(set(da) & set(db)):
        expect(da[k] == db[k], f"{k[0]}/{k[1]} differs:\n  {json.dumps(da[k], sort_keys=True)}\n"
               f"  {json.dumps(db[k], sort_keys=True)}")


GO_DURATION = re.compile(r"^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_seconds(text):
    return sum(float(n) * DURATION_UNITS[u]
               for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


def cmd_config_values(expected_path, printed_path):
    """The adaptor's -print-config output holds every rendered variable it reads, with the value
    it parsed: Go's rules for booleans (1/true), numbers, durations, lists and secrets."""
    with open(expected_path, encoding="utf-8") as f:
        env = json.load(f)["env"]
    with open(printed_path, encoding="utf-8") as f:
        printed = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    checked = 0
    for k, v in env.items():
        if k not in printed:
            continue
        got = printed[k]
        checked += 1
        if got == "<set>" or (got == "" and k.endswith(("SECRET", "SECRET_KEY", "TOKEN"))):
            expect((got == "<set>") == (v != ""), f"{k}: secret {'set' if v else 'empty'}, "
                   f"the adaptor says {got!r}")
        elif got in ("true", "false"):
            expect((got == "true") == (v.lower() in ("1", "true")),
                   f"{k}: {v!r} read as {got}")
        elif re.fullmatch(r"-?\d+", got) and re.fullmatch(r"\s*-?\d+\s*", v):
            expect(int(got) == int(v), f"{k}: {v!r} read as {got}")
        elif got.endswith("s") and GO_DURATION.match(v):
            expect(abs(go_seconds(got) - go_seconds(v)) < 1e-9, f"{k}: {v!r} read as {got}")
        elif "," in v:
            expect(got == ",".join(x for x in v.split(",") if x), f"{k}: {v!r} read as {got!r}")
        else:
            expect(got == v, f"{k}: {v!r} read as {got!r}")
    expect(checked > 0, "the adaptor printed none of the rendered variables")
    print(f"the adaptor read {checked} rendered variables as the Go adaptor would")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "validate":
        cmd_validate(*args)
    elif cmd == "kustomization":
        cmd_kustomization(*args)
    elif cmd == "env":
        cmd_env(*args)
    elif cmd == "compare":
        cmd_compare(*args)
    elif cmd == "same":
        cmd_same(*args)
    elif cmd == "adaptor-keys":
        cmd_adaptor_keys(*args)
    elif cmd == "config-values":
        cmd_config_values(*args)
    else:
        sys.exit(f"unknown command {cmd}")
    for e in errors:
        print("FAIL:", e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
