#!/usr/bin/env python3
"""Drives the API through the Python client that openapi-python-client generated from
openapi.yaml (scripts/client-codegen.sh generates it and runs this):

    python scripts/client_codegen_test.py <base url> <bearer token> [<dir holding ik_api_client>]

Creates an integration with a unique name (the stack is shared and long-lived), with an
Idempotency-Key; gets it back; finds it in the list (filtered by a label only it carries);
deletes it with its ETag in If-Match; and gets 404 for it. Every call goes through the
generated functions and models (raise_on_unexpected_status: a status the spec does not
document fails the check). One line per check, `check ok: ...` or `check FAILED: ...`;
exits 1 when any check failed. An integration left behind by a failure is deleted.
Needs the generated client's dependencies (httpx, attrs, python-dateutil) in the running
interpreter, as .local/client-codegen/venv has them.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")

failures = 0


def report(ok: bool, what: str, detail: str = "") -> bool:
    global failures
    if ok:
        print(f"check ok: {what}", flush=True)
    else:
        failures += 1
        print(f"check FAILED: {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def run_check(what: str, fn: Callable[[], list[str]]) -> bool:
    """fn returns the list of what was wrong (empty: the check passed); an exception fails it."""
    try:
        wrong = fn()
    except Exception as e:  # an undocumented status, a body the generated model cannot read...
        traceback.print_exc(file=sys.stderr)
        return report(False, what, f"{type(e).__name__}: {e}")
    return report(not wrong, what, "; ".join(wrong))


def expect(wrong: list[str], label: str, got: Any, want: Any) -> None:
    if got != want:
        wrong.append(f"{label} is {got!r}, expected {want!r}")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, token = argv[1].rstrip("/"), argv[2]
    gen_dir = Path(argv[3]) if len(argv) > 3 else REPO / ".local" / "client-codegen" / "python"
    sys.path.insert(0, str(gen_dir))

    import httpx
    from ik_api_client import AuthenticatedClient
    from ik_api_client.api.integrations import (
        create_integration,
        delete_integration,
        get_integration,
        list_integrations,
    )
    from ik_api_client.models import IntegrationForm, IntegrationList, IntegrationView, NotFoundProblem

    client = AuthenticatedClient(
        base_url=base_url, token=token, raise_on_unexpected_status=True, timeout=httpx.Timeout(30.0)
    )
    name = f"codegen-{secrets.token_hex(6)}"
    label = name  # a label only this run's integration carries: the list filter finds it alone
    description = "created by scripts/client_codegen_test.py (generated Python client)"
    state: dict[str, Any] = {}

    def create() -> list[str]:
        form = IntegrationForm(
            name=name,
            description=description,
            labels=[label],
            aws_account_id=ACCOUNT,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            create_state_bucket=False,
        )
        r = create_integration.sync_detailed(client=client, body=form, idempotency_key=str(uuid.uuid4()))
        wrong: list[str] = []
        if r.status_code != 201 or not isinstance(r.parsed, IntegrationView):
            return [f"status {int(r.status_code)}, parsed as {type(r.parsed).__name__}: {r.content[:300]!r}"]
        view = r.parsed
        state["id"] = view.id
        if not ULID.match(view.id):
            wrong.append(f"id {view.id!r} is not a ULID")
        expect(wrong, "name", view.name, name)
        expect(wrong, "Location", r.headers.get("location"), f"/integrations/aws/{view.id}")
        expect(wrong, "ETag", r.headers.get("etag"), '"1"')
        body = json.loads(r.content)
        if SECRET in r.content.decode("utf-8", "replace") or "aws_secret_access_key" in body:
            wrong.append("the response echoes the secret access key")
        state["created"] = view.to_dict()
        return wrong

    def get() -> list[str]:
        r = get_integration.sync_detailed(state["id"], client=client)
        if r.status_code != 200 or not isinstance(r.parsed, IntegrationView):
            return [f"status {int(r.status_code)}, parsed as {type(r.parsed).__name__}: {r.content[:300]!r}"]
        v = r.parsed
        wrong: list[str] = []
        expect(wrong, "id", v.id, state["id"])
        expect(wrong, "name", v.name, name)
        expect(wrong, "description", v.description, description)
        expect(wrong, "labels", v.labels, [label])
        expect(wrong, "aws_account_id", v.aws_account_id, ACCOUNT)
        expect(wrong, "aws_access_key_id", v.aws_access_key_id, KEY_ID[:4] + "*" * 12 + KEY_ID[-4:])
        expect(wrong, "aws_assumed_role_name", v.aws_assumed_role_name, None)
        expect(wrong, "aws_external_id", v.aws_external_id, None)
        expect(wrong, "aws_session_duration", v.aws_session_duration, 3600)
        expect(wrong, "aws_default_region", v.aws_default_region, "us-east-1")
        expect(wrong, "create_state_bucket", v.create_state_bucket, False)
        expect(wrong, "state_bucket", v.state_bucket, None)
        expect(wrong, "last_test", v.last_test, None)
        expect(wrong, "revision", v.revision, 1)
        expect(wrong, "shared_with", v.shared_with, [])
        if v.created_at != v.updated_at:
            wrong.append(f"updated_at {v.updated_at} differs from created_at {v.created_at} before any update")
        expect(wrong, "the whole view (against the create's)", v.to_dict(), state["created"])
        expect(wrong, "ETag", r.headers.get("etag"), '"1"')
        if SECRET in r.content.decode("utf-8", "replace"):
            wrong.append("the response echoes the secret access key")
        state["etag"] = r.headers.get("etag")
        return wrong

    def listed() -> list[str]:
        r = list_integrations.sync_detailed(client=client, label=label, limit=10)
        if r.status_code != 200 or not isinstance(r.parsed, IntegrationList):
            return [f"status {int(r.status_code)}, parsed as {type(r.parsed).__name__}: {r.content[:300]!r}"]
        wrong: list[str] = []
        expect(wrong, "the ids listed", [i.id for i in r.parsed.items], [state["id"]])
        expect(wrong, "next_token", r.parsed.next_token, None)
        return wrong

    def delete() -> list[str]:
        r = delete_integration.sync_detailed(state["id"], client=client, if_match=state["etag"])
        if r.status_code != 204:
            return [f"status {int(r.status_code)}: {r.content[:300]!r}"]
        state["deleted"] = True
        return [] if not r.content else [f"a 204 with a body: {r.content[:100]!r}"]

    def gone() -> list[str]:
        r = get_integration.sync_detailed(state["id"], client=client)
        if r.status_code != 404 or not isinstance(r.parsed, NotFoundProblem):
            return [f"status {int(r.status_code)}, parsed as {type(r.parsed).__name__}: {r.content[:300]!r}"]
        wrong: list[str] = []
        expect(wrong, "problem type", str(r.parsed.type_), "/problems/not-found")
        expect(wrong, "problem status", int(r.parsed.status), 404)
        return wrong

    checks = [
        ("create: POST /integrations/aws with an Idempotency-Key is 201 with a ULID id, "
         "Location and ETag, and never echoes the secret", create),
        ("get by id: 200, every field as sent (the key id masked, the defaults filled in), "
         "the same view as the create's, ETag \"1\"", get),
        ("list (label filter): the new integration, and only it", listed),
        ("delete with If-Match: its ETag: 204, no body", delete),
        ("get after delete: 404, a not-found problem", gone),
    ]
    try:
        for i, (what, fn) in enumerate(checks):
            if not run_check(f"python client: {what}", fn) and i == 0:
                for what_next, _ in checks[1:]:
                    report(False, f"python client: {what_next}", "not run: the create failed")
                break
    finally:
        if "id" in state and not state.get("deleted"):
            try:  # leave nothing behind on the shared stack
                delete_integration.sync_detailed(state["id"], client=client, if_match="*")
            except Exception as e:
                print(f"cleanup: deleting {state['id']} failed: {e}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
