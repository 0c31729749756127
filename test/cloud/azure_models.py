"""Checks ARM request bodies against the official Azure SDK for Python's models (Debian's
python3-azure): a body is deserialized into the SDK model and serialized back; a key that does
not survive the round trip is a field the API does not have (misspelled or unknown), a value
that changes has the wrong JSON type, and a value outside one of the model's enums is refused."""

import enum
import re

from azure.mgmt.compute import _serialization
from azure.mgmt.compute.v2022_08_01 import models as compute_models

COMPUTE_API = "2022-08-01"
NETWORK_API = "2022-07-01"

_CLASSES = {k: v for k, v in vars(compute_models).items() if isinstance(v, type)}
_DESERIALIZER = _serialization.Deserializer(_CLASSES)

# Enums the SDK types as plain "str" in its attribute maps; the docstring names the enum.
_VARTYPE = re.compile(r":vartype (\w+): (?:str or )?~[\w.]+\.models\.(\w+)")
# Enums whose SDK list is older than the service (sizes are checked against vmSizes instead).
_OPEN_ENUMS = {"VirtualMachineSizeTypes"}


def _enum_of(cls, attr):
    table = cls.__dict__.get("_pp_enums")
    if table is None:
        table = {}
        for a, name in _VARTYPE.findall(cls.__doc__ or ""):
            e = _CLASSES.get(name)
            if isinstance(e, type) and issubclass(e, enum.Enum) and name not in _OPEN_ENUMS:
                table[a] = e
        setattr(cls, "_pp_enums", table)
    return table.get(attr)


def _diff(sent, back, path, out):
    if isinstance(sent, dict):
        if not isinstance(back, dict):
            out.append(f"{path}: expected an object")
            return
        for k, v in sent.items():
            if v is None:
                continue
            p = f"{path}.{k}" if path else k
            if k not in back:
                out.append(f"{p}: unknown field")
            else:
                _diff(v, back[k], p, out)
    elif isinstance(sent, list):
        if not isinstance(back, list) or len(back) != len(sent):
            out.append(f"{path}: expected an array")
            return
        for i, (a, b) in enumerate(zip(sent, back)):
            _diff(a, b, f"{path}[{i}]", out)
    else:
        same = type(sent) is type(back) and sent == back
        if not same and isinstance(sent, str) and isinstance(back, str):
            same = sent.lower() == back.lower()  # enums are case-insensitive in ARM
        if not same:
            out.append(f"{path}: invalid value {sent!r}")


def _check_enums(obj, path, out):
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_enums(v, f"{path}[{i}]", out)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_enums(v, f"{path}.{k}", out)
        return
    if not hasattr(obj, "_attribute_map"):
        return
    cls = type(obj)
    for attr, desc in cls._attribute_map.items():
        v = getattr(obj, attr, None)
        if v is None:
            continue
        p = f"{path}.{desc['key']}" if path else desc["key"]
        e = _enum_of(cls, attr)
        if e is not None and isinstance(v, str) and v.lower() not in {m.value.lower() for m in e}:
            allowed = ", ".join(m.value for m in e)
            out.append(f"{p}: value {v!r} is not one of: {allowed}")
        _check_enums(v, p, out)


def _check_required(obj, path, out):
    if isinstance(obj, (list, dict)):
        for k, v in (enumerate(obj) if isinstance(obj, list) else obj.items()):
            _check_required(v, f"{path}[{k}]", out)
        return
    if not hasattr(obj, "_attribute_map"):
        return
    for attr, desc in type(obj)._attribute_map.items():
        v = getattr(obj, attr, None)
        p = f"{path}.{desc['key']}" if path else desc["key"]
        rule = type(obj)._validation.get(attr, {})
        if v is None and rule.get("required") and not rule.get("readonly"):
            out.append(f"{p}: required")
        _check_required(v, p, out)


def check_body(body, model="VirtualMachine"):
    """Returns (normalized body, [problems]); the normalized body is what the SDK model
    serializes back (keys in the API's spelling, enum values in the API's case)."""
    problems = []
    if not isinstance(body, dict):
        return None, ["the request body must be a JSON object"]
    try:
        obj = _DESERIALIZER._deserialize(model, body)
    except Exception as e:  # the SDK's DeserializationError and friends
        return None, [f"cannot be read as {model}: {e}"]
    _check_required(obj, "", problems)
    back = obj.serialize(keep_readonly=True)
    _diff(body, back, "", problems)
    _check_enums(obj, "", problems)
    return back, problems


if __name__ == "__main__":
    import json
    import sys

    doc = json.load(sys.stdin)
    _, errs = check_body(doc, sys.argv[1] if len(sys.argv) > 1 else "VirtualMachine")
    for e in errs:
        print(e)
    sys.exit(1 if errs else 0)
