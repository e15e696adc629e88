#!/usr/bin/env python3
"""Real IAM principals in a moto server that enforces IAM, for the setup page's browser tests.

    python moto_principals.py http://127.0.0.1:PORT  > principals.json
    python moto_principals.py role URL ADMIN_KEY_ID ADMIN_SECRET ROLE_NAME TRUST_POLICY_JSON

Opens a no-auth window of exactly the three requests that create an admin user (policy
`*`) and its access key, then, as that admin, as in a real account: a role
`SetupPageRole` (S3 permissions) whose trust policy admits the user `setup-page-user`
(allowed `sts:AssumeRole`), and a user `setup-page-other` whom the trust policy does not
admit. Prints their ARNs and keys as JSON (test keys of a throwaway emulator).

`role`: as the admin, creates (or replaces the trust policy of) the role ROLE_NAME with
exactly TRUST_POLICY_JSON and an S3 permissions policy, as a user does when onboarding
role delegation; prints the role's ARN.
Needs boto3 (installed with moto).
"""

from __future__ import annotations

import json
import sys
import urllib.request

import boto3

ACCOUNT = "123456789012"  # moto's default account
ROLE = "SetupPageRole"


def allow(actions: list[str], resource: str) -> str:
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]})


def user(iam, name: str, policy: str | None) -> dict:
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"arn": arn, "id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def client(url: str, keys: dict):
    return boto3.client("iam", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=keys["id"], aws_secret_access_key=keys["secret"])


def role(url: str, key_id: str, secret: str, name: str, trust: str) -> int:
    iam = client(url, {"id": key_id, "secret": secret})
    json.loads(trust)  # a policy document, not anything else
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="state-bucket", PolicyDocument=allow(["s3:*"], "*"))
    print(arn)
    return 0


def main() -> int:
    if sys.argv[1] == "role":
        return role(*sys.argv[2:7])
    url = sys.argv[1].rstrip("/")
    req = urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"3", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()
    admin = user(client(url, {"id": "AKIAANONYMOUS0000000", "secret": "anonymous"}),
                 "setup-page-admin", allow(["*"], "*"))
    iam = client(url, admin)
    ok = user(iam, "setup-page-user", allow(["sts:AssumeRole"], "*"))
    other = user(iam, "setup-page-other", allow(["sts:AssumeRole"], "*"))
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ok["arn"]}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=ROLE, PolicyName="p", PolicyDocument=allow(["s3:*"], "*"))
    json.dump({"account": ACCOUNT, "role": ROLE, "admin": admin, "user": ok, "other": other},
              sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
