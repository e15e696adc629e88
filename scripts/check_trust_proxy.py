#!/usr/bin/env python3
"""Proof that the local stack's STS refuses what AWS refuses (scripts/sts-trust-proxy).

    check_trust_proxy.py admins MOTO_URL [ACCOUNT...]
        Opens moto's no-auth window for exactly the requests that create one admin (policy
        `*`) and its access key per account (default 111111111111 222222222222), then prints
        two lines: the admins' key ids and their secret keys, comma-separated, as the proxy's
        STS_PROXY_ADMIN_ACCESS_KEY_ID / STS_PROXY_ADMIN_SECRET_ACCESS_KEY take them.

    check_trust_proxy.py PROXY_URL MOTO_URL
        With those two variables set (the proxy's admins), builds principals and roles in
        both accounts (fresh names per run) and checks, printing `check ok: ...` or
        `check FAILED: ...` per case; exit status 1 on any failure:
        moto alone accepts a missing ExternalId (its gap, documented); through the proxy
        the right ExternalId passes, a wrong or missing one, an untrusted principal and a
        failed aws:PrincipalArn condition are refused with STS's AccessDenied; a platform
        role session assumes a customer role in another account only with its ExternalId;
        everything else (S3, STS GetCallerIdentity, IAM) passes through unchanged.

Starts nothing: moto (IAM enforced) and the proxy run already (scripts/trust-proxy-test.sh).
Needs boto3 (installed with moto). The keys are a throwaway emulator's.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

PLATFORM = "111111111111"  # plays the platform's account
CUSTOMER = "222222222222"  # plays a user's account
REGION = "us-east-1"
FAILURES: list[str] = []
# No retries: a refusal must be seen once, and fast.
CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20)


def check(ok: bool, what: str, detail: str = "") -> None:
    if ok:
        print(f"check ok: {what}")
    else:
        FAILURES.append(what)
        print(f"check FAILED: {what}{': ' + detail if detail else ''}")


def client(service: str, url: str, key: dict, account: str | None = None):
    c = boto3.client(service, endpoint_url=url, region_name=REGION, config=CONFIG,
                     aws_access_key_id=key["id"], aws_secret_access_key=key["secret"],
                     aws_session_token=key.get("token"))
    if account:  # moto's header for "this request is about that account" (no-auth window only)
        c.meta.events.register("before-sign.*.*",
                               lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    return c


def allow(actions: list[str], resource: str = "*") -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]})


def trust(principal: str | list[str], condition: dict | None = None) -> str:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


# ---- admins: moto's no-auth window ------------------------------------------------------

def make_admins(moto: str, accounts: list[str]) -> int:
    # As tests/browser/moto_principals.py does, for several accounts: each admin takes three
    # requests (user, policy, key), and the window is exactly that long.
    req = urllib.request.Request(f"{moto}/moto-api/reset-auth", data=str(3 * len(accounts)).encode(),
                                 method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()
    anonymous = {"id": "AKIAANONYMOUS0000000", "secret": "anonymous"}
    keys = []
    for account in accounts:
        iam = client("iam", moto, anonymous, account)
        name = f"trust-proxy-admin-{secrets.token_hex(3)}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="admin", PolicyDocument=allow(["*"]))
        keys.append(iam.create_access_key(UserName=name)["AccessKey"])
    print(",".join(k["AccessKeyId"] for k in keys))
    print(",".join(k["SecretAccessKey"] for k in keys))
    return 0


def admins_from_env(moto: str) -> dict[str, dict]:
    ids = [s for s in os.environ.get("STS_PROXY_ADMIN_ACCESS_KEY_ID", "").split(",") if s]
    keys = [s for s in os.environ.get("STS_PROXY_ADMIN_SECRET_ACCESS_KEY", "").split(",") if s]
    by_account = {}
    for key_id, secret in zip(ids, keys):
        key = {"id": key_id, "secret": secret}
        by_account[client("sts", moto, key).get_caller_identity()["Account"]] = key
    missing = {PLATFORM, CUSTOMER} - by_account.keys()
    if missing:
        sys.exit(f"no admin key for account(s) {sorted(missing)} in STS_PROXY_ADMIN_*: run `admins` first")
    return by_account


# ---- the cases ---------------------------------------------------------------------------

def user(iam, name: str, path: str = "/") -> dict:
    arn = iam.create_user(UserName=name, Path=path)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=allow(["sts:AssumeRole"]))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"arn": arn, "id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def role(iam, name: str, trust_policy: str, permissions: list[str]) -> str:
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=allow(permissions))
    return arn


def assume(url: str, key: dict, role_arn: str, external_id: str | None = None, **extra):
    """(credentials or None, error dict or None, HTTP status)."""
    kwargs = {"RoleArn": role_arn, "RoleSessionName": "trust-proxy-check", **extra}
    if external_id is not None:
        kwargs["ExternalId"] = external_id
    try:
        out = client("sts", url, key).assume_role(**kwargs)
        c = out["Credentials"]
        return ({"id": c["AccessKeyId"], "secret": c["SecretAccessKey"], "token": c["SessionToken"],
                 "arn": out["AssumedRoleUser"]["Arn"]}, None, 200)
    except ClientError as e:
        return None, e.response.get("Error", {}), e.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_allowed(result, what: str) -> dict | None:
    creds, err, status = result
    check(creds is not None, what, f"HTTP {status} {err}")
    return creds


def expect_denied(result, what: str, caller_arn: str, role_arn: str, action: str = "sts:AssumeRole") -> None:
    creds, err, status = result
    if creds is not None:
        check(False, what, f"credentials were issued ({creds['arn']})")
        return
    message = f"User: {caller_arn} is not authorized to perform: {action} on resource: {role_arn}"
    ok = status == 403 and err.get("Code") == "AccessDenied" and err.get("Type") == "Sender" \
        and err.get("Message") == message
    check(ok, what, f"HTTP {status} {err}; expected 403 AccessDenied `{message}`")


def signed_get(url: str, key: dict, params: dict) -> tuple[int, str]:
    """An STS call as a signed GET with its parameters in the query string."""
    query = urllib.parse.urlencode({**params, "Version": "2011-06-15"})
    request = AWSRequest(method="GET", url=f"{url}/?{query}")
    SigV4Auth(Credentials(key["id"], key["secret"]), "sts", REGION).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, headers=dict(prepared.headers), method="GET")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def run(proxy: str, moto: str) -> int:
    admins = admins_from_env(moto)
    run_id = secrets.token_hex(3)
    iam_a = client("iam", moto, admins[PLATFORM])
    iam_b = client("iam", moto, admins[CUSTOMER])
    ext_id, customer_ext_id = f"ext-{secrets.token_hex(8)}", f"ext-{secrets.token_hex(8)}"

    alice = user(iam_a, f"alice-{run_id}")
    mallory = user(iam_a, f"mallory-{run_id}")
    olivia = user(iam_a, f"olivia-{run_id}", path="/ops/")
    ext_role = role(iam_a, f"ExtIdRole-{run_id}",
                    trust(alice["arn"], {"StringEquals": {"sts:ExternalId": ext_id}}), ["s3:ListAllMyBuckets"])
    # The customer's role trusts the platform account, narrowed by the caller's ARN: only
    # users under the path /ops/. (In another account: moto's own trust check, which still
    # runs behind the proxy for a role in the caller's account, matches principals by exact
    # ARN without the user's path, so it would refuse olivia there.)
    ops_only = {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{PLATFORM}:user/ops/*"}}
    path_role = role(iam_b, f"OpsOnlyRole-{run_id}", trust(f"arn:aws:iam::{PLATFORM}:root", ops_only),
                     ["s3:ListAllMyBuckets"])
    # The same condition on a role in the caller's account that names alice.
    same_account_path_role = role(iam_a, f"OpsOnlySameAccount-{run_id}", trust(alice["arn"], ops_only),
                                  ["s3:ListAllMyBuckets"])
    platform_role = role(iam_a, f"PlatformRole-{run_id}", trust(alice["arn"]), ["sts:AssumeRole"])
    customer_role = role(iam_b, f"CustomerRole-{run_id}",
                         trust(platform_role, {"StringEquals": {"sts:ExternalId": customer_ext_id}}),
                         ["s3:ListAllMyBuckets", "sts:GetCallerIdentity"])
    # Another account's role trusting the platform ACCOUNT, narrowed to its platform roles:
    # a role session's aws:PrincipalArn is its role's ARN.
    platform_roles_only = role(iam_b, f"PlatformRolesOnly-{run_id}",
                               trust(f"arn:aws:iam::{PLATFORM}:root",
                                     {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{PLATFORM}:role/PlatformRole-*"}}),
                               ["s3:ListAllMyBuckets"])

    # moto alone (IAM enforced): its gap, documented rather than failed on.
    creds, err, _ = assume(moto, alice, ext_role)
    if creds:
        print("check ok: moto alone ACCEPTS a missing ExternalId the trust policy requires "
              "(documents moto's gap that the proxy closes)")
    else:
        print(f"note: moto alone now refuses a missing ExternalId ({err.get('Code')}): "
              "its gap may be closed; the proxy is still checked below")

    # Through the proxy.
    creds = expect_allowed(assume(proxy, alice, ext_role, ext_id), "right ExternalId -> credentials")
    if creds:
        who = client("sts", proxy, creds).get_caller_identity()["Arn"]
        check(who == creds["arn"], "the issued session works through the proxy (GetCallerIdentity)", who)
    expect_denied(assume(proxy, alice, ext_role, "ext-wrong"), "wrong ExternalId -> AccessDenied",
                  alice["arn"], ext_role)
    expect_denied(assume(proxy, alice, ext_role), "missing ExternalId -> AccessDenied", alice["arn"], ext_role)
    expect_denied(assume(proxy, mallory, ext_role, ext_id),
                  "a principal the trust policy does not name -> AccessDenied", mallory["arn"], ext_role)
    expect_denied(assume(proxy, alice, path_role),
                  "ArnLike aws:PrincipalArn the caller does not match -> AccessDenied", alice["arn"], path_role)
    expect_allowed(assume(proxy, olivia, path_role), "ArnLike aws:PrincipalArn the caller matches -> credentials")
    creds, err, _ = assume(moto, alice, same_account_path_role)
    print("check ok: moto alone ACCEPTS a caller an aws:PrincipalArn condition excludes (documents moto's gap)"
          if creds else f"note: moto alone refuses the aws:PrincipalArn condition ({err.get('Code')})")
    expect_denied(assume(proxy, alice, same_account_path_role),
                  "ArnLike aws:PrincipalArn, same account, caller named but not matching -> AccessDenied",
                  alice["arn"], same_account_path_role)
    # Session tags and a source identity need sts:TagSession / sts:SetSourceIdentity too.
    expect_denied(assume(proxy, alice, ext_role, ext_id, Tags=[{"Key": "team", "Value": "a"}]),
                  "session tags without sts:TagSession in the trust policy -> AccessDenied",
                  alice["arn"], ext_role, "sts:TagSession")
    expect_denied(assume(proxy, alice, ext_role, ext_id, SourceIdentity="alice"),
                  "a source identity without sts:SetSourceIdentity in the trust policy -> AccessDenied",
                  alice["arn"], ext_role, "sts:SetSourceIdentity")
    missing_role = f"arn:aws:iam::{PLATFORM}:role/NoSuchRole-{run_id}"
    expect_denied(assume(proxy, alice, missing_role), "a role that does not exist -> AccessDenied",
                  alice["arn"], missing_role)

    # The query-string form of the same call (a signed GET).
    status, body = signed_get(proxy, alice, {"Action": "AssumeRole", "RoleArn": ext_role,
                                             "RoleSessionName": "query-form"})
    check(status == 403 and "<Code>AccessDenied</Code>" in body,
          "query-string AssumeRole without ExternalId -> AccessDenied", f"HTTP {status} {body[:300]}")
    # With the right ExternalId it is forwarded. moto itself cannot verify a signed GET
    # (it rebuilds the request without its query string): its answer must simply be the
    # one it gives straight.
    right = {"Action": "AssumeRole", "RoleArn": ext_role, "RoleSessionName": "query-form", "ExternalId": ext_id}
    status, body = signed_get(proxy, alice, right)
    direct_status, direct_body = signed_get(moto, alice, right)
    code = lambda text: text.partition("<Code>")[2].partition("</Code>")[0]  # noqa: E731
    check((status, code(body)) == (direct_status, code(direct_body)) and code(body) != "AccessDenied",
          "query-string AssumeRole with the right ExternalId is forwarded (the answer moto gives straight)",
          f"HTTP {status} {code(body)} vs straight HTTP {direct_status} {code(direct_body)}")

    # Role chaining across accounts: alice -> platform role (account A) -> customer role (B).
    platform = expect_allowed(assume(proxy, alice, platform_role), "user -> platform role session")
    if platform:
        creds, err, _ = assume(moto, platform, customer_role)
        print("check ok: moto alone ACCEPTS the cross-account role without ExternalId (documents moto's gap)"
              if creds else f"note: moto alone refuses the cross-account role without ExternalId ({err.get('Code')})")
        customer = expect_allowed(assume(proxy, platform, customer_role, customer_ext_id),
                                  "platform role session -> customer role in another account, right ExternalId")
        if customer:
            ident = client("sts", proxy, customer).get_caller_identity()
            check(ident["Account"] == CUSTOMER, "the customer role session is in the customer's account",
                  ident["Arn"])
        expect_denied(assume(proxy, platform, customer_role),
                      "platform role session -> customer role, missing ExternalId -> AccessDenied",
                      platform["arn"], customer_role)
        expect_denied(assume(proxy, platform, customer_role, ext_id),
                      "platform role session -> customer role, wrong ExternalId -> AccessDenied",
                      platform["arn"], customer_role)
        expect_denied(assume(proxy, mallory, customer_role, customer_ext_id),
                      "a user the customer role does not trust -> AccessDenied (cross-account)",
                      mallory["arn"], customer_role)
        expect_allowed(assume(proxy, platform, platform_roles_only),
                       "account principal + ArnLike aws:PrincipalArn on role/PlatformRole-*: "
                       "the platform role session -> credentials")
    expect_denied(assume(proxy, alice, platform_roles_only),
                  "account principal + ArnLike aws:PrincipalArn on role/PlatformRole-*: a user -> AccessDenied",
                  alice["arn"], platform_roles_only)

    # The role delegation template as the platform renders it (issue 21), its resources
    # deployed into the customer's account: only the platform, only with the integration's
    # External ID, and the session may make exactly the state bucket.
    if platform and os.environ.get("IK_DELEGATION_TEMPLATE_CMD"):
        delegation_template(proxy, iam_b, platform, platform_role, run_id)

    # Everything else passes through unchanged.
    s3_proxy, s3_moto = client("s3", proxy, admins[PLATFORM]), client("s3", moto, admins[PLATFORM])
    bucket = f"trust-proxy-{run_id}"
    s3_proxy.create_bucket(Bucket=bucket)
    names = lambda s3: sorted(b["Name"] for b in s3.list_buckets()["Buckets"])  # noqa: E731
    check(bucket in names(s3_proxy) and names(s3_proxy) == names(s3_moto),
          "S3 ListBuckets through the proxy = straight to moto")
    blob = secrets.token_bytes(3 * 1024 * 1024)  # bigger than the proxy's STS bound: streamed
    s3_proxy.put_object(Bucket=bucket, Key="blob", Body=blob)
    check(s3_moto.get_object(Bucket=bucket, Key="blob")["Body"].read() == blob
          and s3_proxy.get_object(Bucket=bucket, Key="blob")["Body"].read() == blob,
          "S3 PutObject/GetObject of 3 MiB through the proxy, byte for byte")
    fields = lambda ident: (ident["Account"], ident["Arn"], ident["UserId"])  # noqa: E731
    via_proxy = fields(client("sts", proxy, admins[PLATFORM]).get_caller_identity())
    check(via_proxy == fields(client("sts", moto, admins[PLATFORM]).get_caller_identity()),
          "STS GetCallerIdentity through the proxy = straight to moto", str(via_proxy))
    name = customer_role.split("/")[-1]
    via_proxy = client("iam", proxy, admins[CUSTOMER]).get_role(RoleName=name)["Role"]
    direct = iam_b.get_role(RoleName=name)["Role"]
    check(via_proxy == direct, "IAM GetRole through the proxy = straight to moto")
    try:
        client("iam", proxy, mallory).get_role(RoleName=name)
        check(False, "moto's own IAM enforcement still answers through the proxy", "mallory read a role")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "AccessDenied",
              "moto's own IAM enforcement still answers through the proxy (IAM GetRole denied)",
              str(e.response["Error"]))

    print(f"{'all trust-proxy checks passed' if not FAILURES else f'{len(FAILURES)} check(s) FAILED'}")
    return 1 if FAILURES else 0


def resolve(node, params: dict, account: str):
    """The few intrinsic functions the delegation template uses, as CloudFormation resolves them."""
    if isinstance(node, list):
        return [resolve(n, params, account) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return params.get(node["Ref"], node["Ref"])
    if set(node) == {"Fn::Sub"}:
        return node["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", account)
    if set(node) == {"Fn::If"}:
        cond, yes, no = node["Fn::If"]
        return resolve(yes if params["WithStateBucket"] == "true" else no, params, account)
    return {k: resolve(v, params, account) for k, v in node.items()}


def delegation_template(proxy: str, iam_b, platform: dict, platform_role: str, run_id: str) -> None:
    cmd = os.environ["IK_DELEGATION_TEMPLATE_CMD"].split() + [platform_role]
    template = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    ext_id = f"ik-{secrets.token_urlsafe(24)}"
    params = {"RoleName": f"InfraKitchenRole-{run_id}", "ExternalId": ext_id, "WithStateBucket": "true",
              "AWS::NoValue": None}
    props = resolve(template["Resources"]["InfraKitchenRole"]["Properties"], params, CUSTOMER)
    arn = iam_b.create_role(RoleName=props["RoleName"], MaxSessionDuration=props["MaxSessionDuration"],
                            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))["Role"]["Arn"]
    for p in props["Policies"]:
        iam_b.put_role_policy(RoleName=props["RoleName"], PolicyName=p["PolicyName"],
                              PolicyDocument=json.dumps(p["PolicyDocument"]))
    session = expect_allowed(assume(proxy, platform, arn, ext_id),
                             "delegation template: the platform assumes the role with the integration's External ID")
    expect_denied(assume(proxy, platform, arn), "delegation template: without the External ID -> AccessDenied",
                  platform["arn"], arn)
    expect_denied(assume(proxy, platform, arn, f"ik-{secrets.token_urlsafe(24)}"),
                  "delegation template: another integration's External ID -> AccessDenied", platform["arn"], arn)
    if session:
        s3 = client("s3", proxy, session)
        bucket = f"infrakitchen-{CUSTOMER}-bucket"
        what = "delegation template: the role session makes and versions the state bucket and writes state"
        try:
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s3.put_object(Bucket=bucket, Key="env/terraform.tfstate", Body=b"{}")
            versioned = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
            check(versioned, what, "versioning is not Enabled")
        except ClientError as e:
            check(False, what, str(e.response["Error"]))
        try:
            s3.create_bucket(Bucket=f"not-the-state-bucket-{run_id.lower()}")
            check(False, "delegation template: the role session may make no other bucket", "it made one")
        except ClientError as e:
            check(e.response["Error"]["Code"] == "AccessDenied",
                  "delegation template: the role session may make no other bucket (AccessDenied)",
                  str(e.response["Error"]))


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "admins":
        return make_admins(sys.argv[2].rstrip("/"), sys.argv[3:] or [PLATFORM, CUSTOMER])
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    return run(sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"))


if __name__ == "__main__":
    sys.exit(main())
