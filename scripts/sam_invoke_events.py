"""`sam local invoke` for every file in events/, each answer checked.

Runs the built functions (the real `bootstrap` binaries, in containers, under SAM's
Runtime Interface Emulator) against the local AWS, in the order a user's calls take: the
create event gives the id the other events name (the files' sample id is replaced in
copies under .local/events/), and each answer is checked against the API contract.
Called by scripts/sam-local.sh, which builds the functions and starts the local AWS.

    python3 scripts/sam_invoke_events.py --template T --env-vars F --image I \
        --parameter-overrides "..." --out DIR
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

SAMPLE_ID = "01JD5Z8Y6QJ4ZC3N1W7R8T9V0X"
REPO = pathlib.Path(__file__).resolve().parent.parent


class Failed(Exception):
    pass


def check(cond, what, answer):
    if not cond:
        raise Failed(f"{what}; the answer was: {json.dumps(answer)[:1500]}")


class Sam:
    def __init__(self, args):
        self.args = args
        self.out = pathlib.Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings = []

    def event(self, name, integration_id, body=None, saved_as=None):
        text = (REPO / "events" / name).read_text()
        text = text.replace(SAMPLE_ID, integration_id or SAMPLE_ID)
        if body is not None:
            # A variant of the file with another JSON body (e.g. a role delegation form).
            event = json.loads(text)
            event["body"] = json.dumps(body)
            text = json.dumps(event, indent=2)
        path = self.out / (saved_as or name)
        path.write_text(text)
        return path

    def invoke(self, function, name, integration_id=None, body=None, saved_as=None):
        """The function's answer to events/<name> (its sample id replaced; with `body`, a
        copy saved as `saved_as` with that JSON body)."""
        cmd = [
            self.args.sam, "local", "invoke", function,
            "--template", self.args.template,
            "--event", str(self.event(name, integration_id, body, saved_as)),
            "--env-vars", self.args.env_vars,
            "--parameter-overrides", self.args.parameter_overrides,
            "--invoke-image", self.args.image,
            "--skip-pull-image",
        ]
        started = time.monotonic()
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        took = time.monotonic() - started
        self.timings.append((name, took))
        lines = [l for l in run.stdout.splitlines() if l.strip()]
        if run.returncode != 0 or not lines:
            sys.stderr.write(run.stderr[-4000:])
            raise Failed(
                f"sam local invoke {function} -e {name}: exit status {run.returncode}, "
                f"{'no answer' if not lines else 'an answer'} on stdout (its log is above)"
            )
        try:
            answer = json.loads(lines[-1])
        except json.JSONDecodeError:
            sys.stderr.write(run.stderr[-4000:])
            raise Failed(f"{name}: the last line of sam's output is not JSON: {lines[-1][:500]}")
        print(f"  {saved_as or name:<40} {took:5.1f} s  {summary(answer)}", flush=True)
        return answer


def summary(answer):
    if "statusCode" in answer:
        return f"HTTP {answer['statusCode']}"
    if "batchItemFailures" in answer:
        return f"batchItemFailures={answer['batchItemFailures']}"
    return json.dumps(answer)[:80]


def body(answer):
    text = answer.get("body") or ""
    return json.loads(text) if text else None


def header(answer, name):
    for k, v in (answer.get("headers") or {}).items():
        if k.lower() == name:
            return v
    return None


def run(sam):
    created = sam.invoke("CreateIntegrationFunction", "create-integration.post.json")
    check(created.get("statusCode") == 201, "create: 201 expected", created)
    integration = body(created)
    iid = integration.get("id")
    check(isinstance(iid, str) and len(iid) == 26, "create: a ULID id expected", created)
    check(header(created, "etag") == '"1"', "create: ETag \"1\" expected", created)
    check(integration["aws_access_key_id"].startswith("AKIA*"), "create: a masked key id", created)
    check("aws_secret_access_key" not in integration, "create: no secret in the answer", created)

    got = sam.invoke("ManageIntegrationsFunction", "manage-integrations.get.json", iid)
    check(got.get("statusCode") == 200 and body(got)["id"] == iid, "get: 200 with the id", got)

    listed = sam.invoke("ManageIntegrationsFunction", "manage-integrations.list.json", iid)
    ids = [i["id"] for i in body(listed)["items"]] if listed.get("statusCode") == 200 else []
    check(iid in ids, "list: 200 naming the integration (label production)", listed)

    patched = sam.invoke("ManageIntegrationsFunction", "manage-integrations.patch.json", iid)
    p = body(patched) or {}
    check(
        patched.get("statusCode") == 200
        and p.get("revision") == 2
        and p.get("description") == "Production account (billing)"
        and header(patched, "etag") == '"2"',
        "patch (If-Match \"1\"): 200, revision 2, the new description",
        patched,
    )

    form = sam.invoke("TestConnectionFunction", "test-connection.form.json")
    report = body(form) or {}
    check(
        form.get("statusCode") == 200 and report.get("outcome") == "passed" and report.get("steps"),
        "test connection (form): a passing report with its steps",
        form,
    )

    saved = sam.invoke("TestConnectionFunction", "test-connection.saved.json", iid)
    report = body(saved) or {}
    check(
        saved.get("statusCode") == 200
        and report.get("recorded") is True
        and (report.get("last_test") or {}).get("ok") is True
        and any(s["name"] == "assume_role" and s["status"] == "passed" for s in report["steps"]),
        "test connection (saved): the role assumed and the verdict recorded",
        saved,
    )

    policies = sam.invoke("TestConnectionFunction", "test-connection.setup-policies.json")
    docs = (body(policies) or {}).get("policies") or {}
    check(
        policies.get("statusCode") == 200
        and {"role_trust_policy", "user_assume_role_policy", "state_bucket_policy"} <= set(docs),
        "setup-policies: the three documents",
        policies,
    )

    # No stream poller runs in this stage: the bucket cannot be ready before the stream
    # event below, so the request is queued (or left pending) and answers 202.
    queued = sam.invoke("ProvisionBucketFunction", "provision-bucket.post.json", iid)
    check(
        queued.get("statusCode") == 202
        and (body(queued) or {}).get("integration_id") == iid,
        "state-bucket POST: 202 queued",
        queued,
    )

    stream = sam.invoke("ProvisionBucketFunction", "provision-bucket.stream.json", iid)
    check(stream == {"batchItemFailures": []}, "stream: no failed record", stream)

    status = sam.invoke("ProvisionBucketFunction", "provision-bucket.get.json", iid)
    b = body(status) or {}
    check(
        status.get("statusCode") == 200
        and b.get("status") == "ready"
        and b.get("name") == "infrakitchen-123456789012-bucket"
        and "backend \"s3\"" in (b.get("backend") or ""),
        "state-bucket GET after the stream event: ready, with the backend block",
        status,
    )

    swept = sam.invoke("ProvisionBucketFunction", "provision-bucket.sweep.json")
    check(
        {"due", "ready", "failed", "skipped", "errors", "deferred"} <= set(swept)
        and swept["errors"] == 0,
        "sweep: a report with no error",
        swept,
    )

    health = sam.invoke("HealthCheckFunction", "health-check.schedule.json")
    check(
        {"checked", "ok", "failing", "buckets_checked", "buckets_repaired", "remaining"} <= set(health)
        and health["errors"] == 0
        and health["checked"] >= 1
        and health["buckets_checked"] >= 1,
        "health check: the schedule's run tested the integration and read its ready bucket",
        health,
    )

    history = sam.invoke("ManageIntegrationsFunction", "manage-integrations.history.json", iid)
    actions = [e.get("action") for e in (body(history) or {}).get("events") or []]
    check(
        history.get("statusCode") == 200
        and actions[-1:] == ["created"]
        and {"updated", "tested", "bucket_ready"} <= set(actions)
        and actions.index("bucket_ready") < actions.index("tested") < actions.index("updated"),
        "history: the day's events, newest first (bucket ready, tested, updated, created)",
        history,
    )

    onboarding(sam, iid)

    deleted = sam.invoke("ManageIntegrationsFunction", "manage-integrations.delete.json", iid)
    check(deleted.get("statusCode") == 204, "delete: 204", deleted)
    gone = sam.invoke("ManageIntegrationsFunction", "manage-integrations.get.json", iid)
    check(gone.get("statusCode") == 404, "get after delete: 404", gone)


def onboarding(sam, iid):
    """Onboarding is for role delegation: the access-key integration gets 409; a
    delegation integration (created from a variant of the create event) gets its
    documents, and is deleted again."""
    refused = sam.invoke("ManageIntegrationsFunction", "manage-integrations.onboarding.json", iid)
    problem = body(refused) or {}
    check(
        refused.get("statusCode") == 409
        and problem.get("type") == "/problems/conflict"
        and "role delegation" in (problem.get("detail") or ""),
        "onboarding of an access-key integration: 409 saying it is for role delegation",
        refused,
    )

    form = {
        "name": "aws-delegated",
        "auth": "role_delegation",
        "aws_account_id": "123456789012",
        "aws_assumed_role_name": "InfraKitchenDelegated",
    }
    created = sam.invoke(
        "CreateIntegrationFunction", "create-integration.post.json",
        body=form, saved_as="create-integration.delegation.json",
    )
    d = body(created) or {}
    did, external_id = d.get("id"), d.get("aws_external_id")
    check(
        created.get("statusCode") == 201
        and d.get("auth") == "role_delegation"
        and isinstance(external_id, str),
        "create (role delegation): 201 with a generated External ID",
        created,
    )

    got = sam.invoke("ManageIntegrationsFunction", "manage-integrations.onboarding.json", did)
    o = body(got) or {}
    principal = o.get("platform_principal")
    trust = ((o.get("trust_policy") or {}).get("Statement") or [{}])[0]
    role = (((o.get("cloudformation_template") or {}).get("Resources") or {})
            .get("InfraKitchenRole") or {}).get("Properties") or {}
    link = o.get("quick_create_link")
    check(
        got.get("statusCode") == 200
        and o.get("integration_id") == did
        and o.get("external_id") == external_id
        and o.get("role_arn") == "arn:aws:iam::123456789012:role/InfraKitchenDelegated"
        and isinstance(principal, str) and principal
        and trust.get("Principal") == {"AWS": principal}
        and trust.get("Condition") == {"StringEquals": {"sts:ExternalId": external_id}}
        and role.get("AssumeRolePolicyDocument", {}).get("Statement", [{}])[0]
            .get("Principal") == {"AWS": principal}
        and (o.get("permissions_policy") or {}).get("Statement")
        and (link is None or f"param_ExternalId={external_id}" in link),
        "onboarding (role delegation): 200 naming the External ID and the platform principal",
        got,
    )

    gone = sam.invoke("ManageIntegrationsFunction", "manage-integrations.delete.json", did)
    check(gone.get("statusCode") == 204, "delete (role delegation): 204", gone)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sam", required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--env-vars", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--parameter-overrides", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sam = Sam(args)
    started = time.monotonic()
    try:
        run(sam)
    except Failed as e:
        print(f"sam local invoke: FAILED: {e}", file=sys.stderr)
        return 1
    n = len(sam.timings)
    print(f"sam local invoke: {n} invocations of {len(set(t[0] for t in sam.timings))} events "
          f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
