"""botocore's EC2 and STS models for the EC2 mock and the request-equality test: the Query form
parsed back into an operation's input shape, botocore's own serialization of those parameters,
and EC2/STS XML responses rendered from the output shapes (so botocore's parser reads them)."""

import base64
import binascii
import re
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator

EC2_VERSION = "2016-11-15"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
STS_VERSION = "2011-06-15"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"

_models = {}


def _patch_ec2(d):
    """Members EC2 gained after Debian packaged botocore 1.29 (AMD SEV-SNP, 2023-04), spelled as
    in AWS's current EC2 model, so the mock accepts and answers what EC2 does today."""
    s = d["shapes"]
    s.setdefault("AmdSevSnpSpecification", {"type": "string", "enum": ["enabled", "disabled"]})
    s["CpuOptionsRequest"]["members"].setdefault("AmdSevSnp", {"shape": "AmdSevSnpSpecification"})
    s["CpuOptions"]["members"].setdefault(
        "AmdSevSnp", {"shape": "AmdSevSnpSpecification", "locationName": "amdSevSnp"})
    s.setdefault("SupportedAdditionalProcessorFeature",
                 {"type": "string", "enum": ["amd-sev-snp"]})
    s.setdefault("SupportedAdditionalProcessorFeatureList", {
        "type": "list",
        "member": {"shape": "SupportedAdditionalProcessorFeature", "locationName": "item"}})
    s["ProcessorInfo"]["members"].setdefault(
        "SupportedFeatures",
        {"shape": "SupportedAdditionalProcessorFeatureList", "locationName": "supportedFeatures"})


def model(service):
    if service not in _models:
        d = Loader().load_service_model(service, "service-2")
        if service == "ec2":
            _patch_ec2(d)
        _models[service] = ServiceModel(d, service_name=service)
    return _models[service]


class QueryError(Exception):
    """A request EC2 would refuse: code and message as EC2 spells them."""

    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def serialized_name(shape, member_name, protocol):
    if protocol == "ec2":
        if "queryName" in shape.serialization:
            return shape.serialization["queryName"]
        if "name" in shape.serialization:
            n = shape.serialization["name"]
            return n[0].upper() + n[1:]
        return member_name
    return shape.serialization.get("name", member_name)


def _convert(value, shape, key):
    t = shape.type_name
    if t in ("integer", "long"):
        if not re.fullmatch(r"-?[0-9]+", value):
            raise QueryError("InvalidParameterValue",
                             f"Value ({value}) for parameter {key} is invalid. Expected an integer.")
        return int(value)
    if t == "boolean":
        if value not in ("true", "false"):
            raise QueryError("InvalidParameterValue",
                             f"Value ({value}) for parameter {key} is invalid. "
                             "Expected 'true' or 'false'.")
        return value == "true"
    if t in ("float", "double"):
        try:
            return float(value)
        except ValueError:
            raise QueryError("InvalidParameterValue",
                             f"Value ({value}) for parameter {key} is invalid.") from None
    if t == "blob":
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise QueryError("InvalidParameterValue",
                             f"Value for parameter {key} is not valid base64.") from None
    return value  # string, timestamp (the validator accepts ISO 8601 text)


def _insert(tree, tokens, shape, key, value, protocol):
    """Walk one form key's tokens down the shape; tree is a dict (structure) or {index: ..}."""
    t = shape.type_name
    if t == "structure":
        if not tokens:
            raise QueryError("InvalidParameterValue", f"The parameter {key} is a structure")
        names = {serialized_name(ms, mn, protocol): (mn, ms) for mn, ms in shape.members.items()}
        if tokens[0] not in names:
            raise QueryError("UnknownParameter", f"The parameter {key} is not recognized")
        mn, ms = names[tokens[0]]
        rest = tokens[1:]
        if ms.type_name in ("structure", "list", "map"):
            if ms.type_name == "list" and not rest and value == "":
                tree[mn] = {}  # the Query protocol's empty list
                return
            _insert(tree.setdefault(mn, {}), rest, ms, key, value, protocol)
        else:
            if rest:
                raise QueryError("UnknownParameter", f"The parameter {key} is not recognized")
            tree[mn] = _convert(value, ms, key)
        return
    if t == "list":
        if protocol != "ec2" and not shape.serialization.get("flattened"):
            member = shape.member.serialization.get("name", "member")
            if not tokens or tokens[0] != member:
                raise QueryError("UnknownParameter", f"The parameter {key} is not recognized")
            tokens = tokens[1:]
        if not tokens or not re.fullmatch(r"[1-9][0-9]*", tokens[0]):
            raise QueryError("InvalidParameterValue", f"The parameter {key} has no list index")
        i = int(tokens[0])
        ms = shape.member
        if ms.type_name in ("structure", "list", "map"):
            _insert(tree.setdefault(i, {}), tokens[1:], ms, key, value, protocol)
        else:
            if len(tokens) != 1:
                raise QueryError("UnknownParameter", f"The parameter {key} is not recognized")
            tree[i] = _convert(value, ms, key)
        return
    raise QueryError("UnknownParameter", f"The parameter {key} is not recognized ({t})")


def _finish(tree, shape, path):
    t = shape.type_name
    if t == "structure":
        return {k: _finish(v, shape.members[k], f"{path}.{k}") for k, v in tree.items()}
    if t == "list":
        idx = sorted(tree)
        if idx != list(range(1, len(idx) + 1)):
            raise QueryError("InvalidParameterValue",
                             f"List {path} indexes are not 1..N: {idx}")
        return [_finish(tree[i], shape.member, f"{path}.{i}") for i in idx]
    return tree


def parse_form(pairs, service="ec2"):
    """Form pairs -> (operation model, params). Raises QueryError as EC2 would answer."""
    m = model(service)
    protocol = m.metadata["protocol"]
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise QueryError("InvalidParameterValue", f"The parameter {k} is given twice")
        seen[k] = v
    action = seen.pop("Action", None)
    if not action:
        raise QueryError("MissingAction", "The request must contain the parameter Action")
    version = seen.pop("Version", None)
    if not version:
        raise QueryError("MissingParameter", "The request must contain the parameter Version")
    if version != m.metadata["apiVersion"]:
        raise QueryError("NoSuchVersion",
                         f"The requested version ({version}) of service {m.service_name} "
                         "is not the one this mock models "
                         f"({m.metadata['apiVersion']})")
    if action not in m.operation_names:
        raise QueryError("InvalidAction",
                         f"The action {action} is not valid for this web service.")
    op = m.operation_model(action)
    shape = op.input_shape
    tree = {}
    for k, v in seen.items():
        if shape is None:
            raise QueryError("UnknownParameter", f"The parameter {k} is not recognized")
        _insert(tree, k.split("."), shape, k, v, protocol)
    params = _finish(tree, shape, "") if shape is not None else {}
    return op, params


def validate(op, params):
    """botocore's ParamValidator over params; QueryError in EC2's words on failure."""
    if op.input_shape is None:
        return
    report = ParamValidator().validate(params, op.input_shape)
    if not report.has_errors():
        return
    errors = getattr(report, "_errors", [])
    for kind, name, extra in errors:
        if kind == "missing required field":
            raise QueryError("MissingParameter",
                             f"The request must contain the parameter {extra.get('required_name')}")
    raise QueryError("InvalidParameterValue", report.generate_report().replace("\n", " "))


def to_form(op, params):
    """What botocore's serializer sends for these params: {name: str}."""
    ser = create_serializer(op.service_model.metadata["protocol"], include_validation=False)
    body = ser.serialize_to_request(params, op)["body"]
    return {k: (v if isinstance(v, str) else str(v)) for k, v in body.items()}


def form_diff(sent, expected):
    """Lines describing how the sent form differs from botocore's; empty when equal."""
    out = []
    for k in sorted(set(sent) | set(expected)):
        if k not in expected:
            out.append(f"  only in ours:     {k}={sent[k]!r}")
        elif k not in sent:
            out.append(f"  only in botocore: {k}={expected[k]!r}")
        elif sent[k] != expected[k]:
            out.append(f"  differs:          {k}: ours {sent[k]!r} botocore {expected[k]!r}")
    return out


def iso8601(t):
    if isinstance(t, (int, float)):
        t = datetime.fromtimestamp(t, timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _xml(value, shape, tag):
    t = shape.type_name
    if t == "structure":
        inner = []
        for mn, ms in shape.members.items():
            if mn in value and value[mn] is not None:
                inner.append(_xml(value[mn], ms, ms.serialization.get("name", mn)))
        return f"<{tag}>{''.join(inner)}</{tag}>"
    if t == "list":
        name = shape.member.serialization.get("name", "member")
        items = "".join(_xml(v, shape.member, name) for v in value)
        if shape.serialization.get("flattened"):
            return items
        return f"<{tag}>{items}</{tag}>" if items else f"<{tag}/>"  # as EC2 writes empty sets
    if t == "boolean":
        return f"<{tag}>{'true' if value else 'false'}</{tag}>"
    if t == "timestamp":
        return f"<{tag}>{iso8601(value)}</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def render_response(op, result, request_id):
    """EC2 (ec2 protocol) or STS (query protocol) response XML for op's output shape."""
    shape = op.output_shape
    protocol = op.service_model.metadata["protocol"]
    name = op.name
    body = ""
    if shape is not None:
        inner = "".join(_xml(result[mn], ms, ms.serialization.get("name", mn))
                        for mn, ms in shape.members.items()
                        if mn in result and result[mn] is not None)
        body = inner
    if protocol == "ec2":
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{name}Response xmlns="{EC2_NS}">'
                f"<requestId>{request_id}</requestId>{body}</{name}Response>")
    wrapper = op.output_shape.serialization.get("resultWrapper", f"{name}Result") \
        if shape is not None else f"{name}Result"
    return (f'<{name}Response xmlns="{STS_NS}"><{wrapper}>{body}</{wrapper}>'
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
            f"</{name}Response>")


def ec2_error_xml(code, message, request_id):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>")


def sts_error_xml(code, message, request_id, kind="Sender"):
    return (f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>")
