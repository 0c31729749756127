"""Small command-line access to the EC2 mock for the aws-*.sh tests.

  aws_q.py URL q EXPR           evaluate EXPR over the mock's log and state; print it (JSON)
                                names: log (all entries), ec2 (EC2 calls), sts (STS calls),
                                state, live (instances not terminated/shutting-down)
  aws_q.py URL seed TAG=V...    RunInstances through a botocore client (the mock's static key),
                                tagged with TAG=V; prints the instance id
  aws_q.py URL forget ID        the instance vanishes from EC2
  aws_q.py URL json PATH [BODY] POST BODY (JSON) to a /_mock/ path, or GET it
"""

import json
import sys
import urllib.request

URL = sys.argv[1]


def http(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(URL + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(r, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def main():
    cmd = sys.argv[2]
    if cmd == "q":
        log = http("/_mock/requests")
        state = http("/_mock/state")
        ns = {
            "log": log, "state": state,
            "ec2": [e for e in log if e.get("action") and
                    e.get("action") != "AssumeRoleWithWebIdentity"],
            "sts": [e for e in log if e.get("action") == "AssumeRoleWithWebIdentity"],
            "live": [i for i in state["instances"]
                     if i["state"] not in ("terminated", "shutting-down")],
        }
        ns["__builtins__"] = __builtins__
        v = eval(sys.argv[3], ns)  # test-authored expressions; one namespace for comprehensions
        print(v if isinstance(v, str) else json.dumps(v))
    elif cmd == "seed":
        import botocore.session
        tags = [dict(zip(("Key", "Value"), a.split("=", 1))) for a in sys.argv[3:]]
        c = botocore.session.get_session().create_client(
            "ec2", region_name=http("/_mock/state")["region"], endpoint_url=URL,
            aws_access_key_id="AKIAMOCKSTATIC000001",
            aws_secret_access_key="mock/static/secret/key/0000000000000000")
        r = c.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="m6a.large",
                            MinCount=1, MaxCount=1, SubnetId="subnet-0a1b2c3d4e5f60718",
                            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        print(r["Instances"][0]["InstanceId"])
    elif cmd == "forget":
        http("/_mock/forget", {"id": sys.argv[3]})
    elif cmd == "json":
        r = http(sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else None)
        if r is not None:
            print(json.dumps(r))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
