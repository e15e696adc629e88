"""The Python peer of create-integration, for scripts/bench_runtime.py: the same create
as a team would typically write it in Python 3 + boto3 (module-level clients, simple
validation of the README's form rules, KMS Encrypt with the integration's encryption
context, one DynamoDB transaction of the record, its name guard, its visibility entries
and an audit event). Not part of the service: it exists to be measured next to ours.
"""

import json
import os
import re
import secrets
import time

import boto3

# Module-level clients, built once per process (during Lambda's Init), as AWS advises.
kms = boto3.client("kms")
dynamodb = boto3.client("dynamodb")
TABLE = os.environ["TABLE_NAME"]
KEY_ID = os.environ["KMS_KEY_ID"]

FIELDS = {
    "name", "description", "labels", "shared_with", "aws_account_id", "aws_access_key_id",
    "aws_secret_access_key", "aws_assumed_role_name", "aws_external_id",
    "aws_session_duration", "aws_default_region", "create_state_bucket",
}
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ACCOUNT = re.compile(r"[0-9]{12}")
ACCESS_KEY = re.compile(r"AKIA[A-Z2-7]{16}")
SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
ROLE = re.compile(r"(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]")
ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid():
    n = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(ULID_ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def problem(status, title, detail, errors=None):
    body = {"type": "/problems/" + title.lower().replace(" ", "-"), "title": title,
            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return {"statusCode": status, "headers": {"content-type": "application/problem+json"},
            "body": json.dumps(body)}


def validate(form):
    errors = []

    def bad(field, message):
        errors.append({"field": field, "message": message})

    for field in form:
        if field not in FIELDS:
            bad(field, "unknown field")
    text = lambda f: isinstance(form.get(f), str)  # noqa: E731
    if not text("name") or not NAME.fullmatch(form["name"]):
        bad("name", "must be 1-64 letters, digits, '-' or '_'")
    if "description" in form and (not text("description") or len(form["description"]) > 1024):
        bad("description", "must be text of at most 1024 characters")
    labels = form.get("labels", [])
    if not isinstance(labels, list) or len(labels) > 50 or not all(
            isinstance(x, str) and 1 <= len(x) <= 63 and x.isprintable() for x in labels):
        bad("labels", "must be at most 50 labels of 1-63 printable characters")
    for field, pattern, message in (
            ("aws_account_id", ACCOUNT, "must be exactly 12 digits"),
            ("aws_access_key_id", ACCESS_KEY, "must be AKIA and 16 of A-Z, 2-7"),
            ("aws_secret_access_key", SECRET, "must be 40 of A-Za-z0-9/+")):
        if not text(field) or not pattern.fullmatch(form[field].strip()):
            bad(field, message)
    if "aws_assumed_role_name" in form and (
            not text("aws_assumed_role_name") or not ROLE.fullmatch(form["aws_assumed_role_name"])):
        bad("aws_assumed_role_name", "must be an IAM role name")
    duration = form.get("aws_session_duration", 3600)
    if not isinstance(duration, int) or not 900 <= duration <= 43200:
        bad("aws_session_duration", "must be 900-43200 seconds")
    if not REGION.fullmatch(str(form.get("aws_default_region", "us-east-1"))):
        bad("aws_default_region", "must be a region code")
    if not isinstance(form.get("create_state_bucket", False), bool):
        bad("create_state_bucket", "must be true or false")
    return errors


def handler(event, context):
    try:
        form = json.loads(event.get("body") or "")
    except ValueError:
        return problem(400, "Invalid request", "the body is not JSON")
    if not isinstance(form, dict):
        return problem(400, "Invalid request", "the body is not a JSON object")
    errors = validate(form)
    if errors:
        return problem(400, "Validation failed", "%d fields are invalid" % len(errors), errors)

    owner = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    integration_id = ulid()
    account = form["aws_account_id"].strip()
    name_key = form["name"].lower()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sealed = kms.encrypt(
        KeyId=KEY_ID,
        Plaintext=form["aws_secret_access_key"].strip().encode(),
        EncryptionContext={"integration_id": integration_id, "aws_account_id": account},
    )["CiphertextBlob"]
    labels = sorted({x.lower() for x in form.get("labels", [])})
    record = {
        "id": integration_id, "name": form["name"], "description": form.get("description", ""),
        "labels": labels, "aws_account_id": account,
        "aws_access_key_id": form["aws_access_key_id"].strip(),
        "aws_assumed_role_name": form.get("aws_assumed_role_name"),
        "aws_session_duration": form.get("aws_session_duration", 3600),
        "aws_default_region": form.get("aws_default_region", "us-east-1"),
        "created_by": owner, "created_at": now, "updated_at": now, "version": 1,
    }
    item = {
        "pk": {"S": "I#" + integration_id}, "entity": {"S": "integration"},
        "name_key": {"S": name_key}, "secret_ciphertext": {"B": sealed},
        "doc": {"S": json.dumps(record)},
    }
    if form.get("create_state_bucket"):
        item["state_bucket"] = {"M": {"status": {"S": "pending"}, "updated_at": {"S": now}}}
    view_sk = "%s#%s" % (name_key, integration_id)
    shard = "a#%02d" % (ord(integration_id[-1]) % 16)
    puts = [item, {"pk": {"S": "N#%s#%s" % (owner, name_key)}, "integration_id": {"S": integration_id}}]
    for partition in ("u#" + owner, shard):
        puts.append({"pk": {"S": "V#%s#%s" % (integration_id, partition)},
                     "view_pk": {"S": partition}, "view_sk": {"S": view_sk},
                     "labels": {"L": [{"S": x} for x in labels]}})
    event_id = ulid()
    puts.append({"pk": {"S": "H#%s#%s" % (integration_id, event_id)},
                 "history_of": {"S": integration_id}, "history_at": {"S": event_id},
                 "action": {"S": "created"}, "by": {"S": owner},
                 "expires_at": {"N": str(int(time.time()) + 90 * 86400)}})
    try:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": p, "ConditionExpression": "attribute_not_exists(pk)"}}
            for p in puts])
    except dynamodb.exceptions.TransactionCanceledException as e:
        reasons = e.response.get("CancellationReasons", [])
        if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
            return problem(409, "Conflict", "an integration named %r exists" % form["name"])
        raise
    return {"statusCode": 201, "headers": {"content-type": "application/json",
                                           "location": "/integrations/aws/" + integration_id},
            "body": json.dumps(record)}


