#!/usr/bin/env python3
"""boto3 against a broker that checks SigV4 signatures.

What boto3's ``iot`` (control plane) and ``iot-jobs-data`` (data plane)
clients raise for each way a signature can fail, and that a correctly
signed call succeeds:

    python3 signatures.py < plan.json

The plan is the one interop/node/signatures.js reads (endpoints, the right
credentials, a job queued for a thing, the failure cases; a case without a
key sends no signature). The script judges nothing: it prints one JSON line
with, per case and per plane, the exception class, e.response['Error'] and
the HTTP status, and the results of the signed calls.
"""

import datetime
import json
import sys
import types

import boto3
import botocore
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

# skew_seconds is the clock error the next signature is made with.
skew_seconds = 0


class _SkewedDatetime(datetime.datetime):
    """datetime.datetime with a clock that is skew_seconds off."""

    @classmethod
    def utcnow(cls):
        return datetime.datetime.utcnow() + datetime.timedelta(seconds=skew_seconds)

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) + datetime.timedelta(seconds=skew_seconds)


def _skew_clock(module):
    """Gives a signing module a clock that is skew_seconds off. botocore
    signs with botocore.auth.SigV4Auth, or with the CRT's signer
    (botocore.crt.auth) when awscrt is installed, as Debian's is; older
    releases read datetime.datetime.utcnow(), newer ones
    get_current_datetime()."""
    shim = types.ModuleType("datetime")
    shim.__dict__.update(datetime.__dict__)
    shim.datetime = _SkewedDatetime
    module.datetime = shim
    current = getattr(module, "get_current_datetime", None)
    if current is not None:
        def skewed(*args, **kwargs):
            return current(*args, **kwargs) + datetime.timedelta(seconds=skew_seconds)
        module.get_current_datetime = skewed


_skew_clock(botocore.auth)
try:
    import botocore.crt.auth
except ImportError:  # no awscrt: botocore signs in Python
    pass
else:
    _skew_clock(botocore.crt.auth)


def clients(plan, case):
    """Both clients for one case, with one attempt per call."""
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
    kwargs = {"region_name": case.get("region") or "us-east-1"}
    if case.get("key"):
        kwargs.update(aws_access_key_id=case["key"], aws_secret_access_key=case["secret"])
    else:
        config = config.merge(Config(signature_version=botocore.UNSIGNED))
    session = boto3.session.Session()
    return (
        session.client("iot", endpoint_url=plan["api"], config=config, **kwargs),
        session.client("iot-jobs-data", endpoint_url=plan["data"], config=config, **kwargs),
    )


def attempt(call):
    """Runs one call: {"ok": True, "result": ...} or the ClientError as
    boto3 raised it."""
    try:
        out = call()
        return {"ok": True, "status": out["ResponseMetadata"]["HTTPStatusCode"], "result": out}
    except ClientError as e:
        return {
            "ok": False,
            "error": {
                "class": type(e).__name__,
                "code": e.response.get("Error", {}).get("Code"),
                "message": e.response.get("Error", {}).get("Message"),
                "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                "str": str(e),
            },
        }


def run(plan):
    global skew_seconds
    summary = {
        "python": sys.version.split()[0],
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "signer": botocore.auth.AUTH_TYPE_MAPS["v4"].__name__,
        "cases": [],
    }
    for case in plan["cases"]:
        control, data = clients(plan, case)
        skew_seconds = case.get("skewSeconds") or 0
        try:
            listed = attempt(lambda: control.list_jobs())
            pending = attempt(lambda: data.get_pending_job_executions(thingName=plan["thing"]))
        finally:
            skew_seconds = 0
        summary["cases"].append({
            "name": case["name"],
            "control": {"ok": True} if listed["ok"] else listed,
            "data": {"ok": True} if pending["ok"] else pending,
        })

    control, data = clients(plan, {"key": plan["key"], "secret": plan["secret"]})
    listed = attempt(lambda: control.list_jobs())
    job = attempt(lambda: control.describe_job(jobId=plan["job"]))
    pending = attempt(lambda: data.get_pending_job_executions(thingName=plan["thing"]))
    summary["signed"] = {
        "listJobs": {"ok": True, "jobIds": [j["jobId"] for j in listed["result"]["jobs"]]} if listed["ok"] else listed,
        "describeJob": {"ok": True, "jobId": job["result"]["job"]["jobId"], "status": job["result"]["job"]["status"]}
        if job["ok"] else job,
        "getPendingJobExecutions": {"ok": True, "queued": [j["jobId"] for j in pending["result"]["queuedJobs"]]}
        if pending["ok"] else pending,
    }
    return summary


def main():
    plan = json.load(sys.stdin)
    print(json.dumps(run(plan), default=str))


if __name__ == "__main__":
    main()
