"""What the runtime benchmark (scripts/bench_runtime.py) needs of the local AWS beyond the
service's own table and keys: a customer account in moto for Test Connection and
provisioning, stream records as Lambda hands them, and the names of the AWS operations
the counting proxy sees.

The account is moto's default (123456789012), the one every request without a known
access key lands in: an IAM user with an access key, allowed to assume a role whose trust
policy names that user with an ExternalId, and the account's state bucket
(`infrakitchen-123456789012-bucket`), created beforehand so that every test finds it
`owned` and every provisioning run adopts it (CreateBucket of an own bucket answers 200 in
us-east-1, as AWS does there). The bench's moto does not enforce IAM (it is started
without `INITIAL_NO_AUTH_ACTION_COUNT`, so it evaluates no policy): the policies are what
a real account would hold, not a check; the keys and the role are real principals, so
GetCallerIdentity and AssumeRole answer with their ARNs.
"""

import base64
import json
import re
import urllib.parse
import uuid

import boto3
import botocore.config

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "infrakitchen-%s-bucket" % ACCOUNT
EXTERNAL_ID = "infrakitchen-tenant-42"


def _policy(statements):
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def customer_account(moto_url):
    """Creates the user, its key, the role and the state bucket; returns what a form needs."""
    suffix = uuid.uuid4().hex[:6]
    admin = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    iam = admin.client("iam", endpoint_url=moto_url)
    user = "InfraKitchenUser-%s" % suffix
    role = "InfraKitchenRole-%s" % suffix
    role_arn = "arn:aws:iam::%s:role/%s" % (ACCOUNT, role)
    user_arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(UserName=user, PolicyName="assume-infrakitchen-role", PolicyDocument=_policy([
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    iam.create_role(RoleName=role, MaxSessionDuration=43200, AssumeRolePolicyDocument=_policy([
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]))
    bucket_arn = "arn:aws:s3:::%s" % BUCKET
    iam.put_role_policy(RoleName=role, PolicyName="state-bucket", PolicyDocument=_policy([
        {"Effect": "Allow", "Resource": [bucket_arn], "Action": [
            "s3:ListBucket", "s3:CreateBucket", "s3:PutBucketVersioning", "s3:PutEncryptionConfiguration",
            "s3:PutBucketPublicAccessBlock", "s3:PutBucketOwnershipControls", "s3:PutBucketPolicy",
            "s3:PutLifecycleConfiguration", "s3:PutBucketTagging"]},
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]))
    user_session = boto3.Session(aws_access_key_id=key["AccessKeyId"],
                                 aws_secret_access_key=key["SecretAccessKey"], region_name=REGION)
    sts = user_session.client("sts", endpoint_url=moto_url)
    found = sts.get_caller_identity()
    if found["Arn"] != user_arn or found["Account"] != ACCOUNT:
        raise SystemExit("moto does not know the bench user's key: %s" % found)
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="bench-setup", ExternalId=EXTERNAL_ID)["Credentials"]
    s3 = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"], region_name=REGION).client(
        "s3", endpoint_url=moto_url, config=botocore.config.Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=BUCKET)
    return {
        "user_arn": user_arn, "role": role, "role_arn": role_arn,
        "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
    }


def _stream_value(v):
    """A low-level boto3 attribute value as the stream's JSON carries it (binary: base64)."""
    (kind, x), = v.items()
    if kind == "B":
        return {"B": base64.b64encode(x).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in x]}
    if kind == "M":
        return {"M": {k: _stream_value(e) for k, e in x.items()}}
    if kind == "L":
        return {"L": [_stream_value(e) for e in x]}
    return {kind: x}


class StreamRecords:
    """Stream records of items as Lambda hands them (`Records[]` of a DynamoDB event):
    INSERT with the item as NewImage, the table's stream ARN, increasing sequence numbers."""

    def __init__(self, ddb, table):
        self.ddb, self.table = ddb, table
        self.arn = ddb.describe_table(TableName=table)["Table"].get(
            "LatestStreamArn", "arn:aws:dynamodb:%s:%s:table/%s/stream/bench" % (REGION, ACCOUNT, table))
        self.seq = 0

    def inserts(self, pks):
        """One INSERT record per item key (`pk`), read back from the table as written."""
        items = {}
        for i in range(0, len(pks), 100):
            keys = [{"pk": {"S": pk}} for pk in pks[i:i + 100]]
            while keys:
                out = self.ddb.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
                for item in out["Responses"].get(self.table, []):
                    items[item["pk"]["S"]] = item
                keys = out.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        records = []
        for pk in pks:
            image = {k: _stream_value(v) for k, v in items[pk].items()}
            self.seq += 1
            records.append({
                "eventID": uuid.uuid4().hex,
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1795521600,
                    "Keys": {"pk": image["pk"]},
                    "NewImage": image,
                    "SequenceNumber": "%024d" % (111100000000000000000000 + self.seq),
                    "SizeBytes": len(json.dumps(image)),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": self.arn,
            })
        return records


_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")


def _s3_operation(method, path):
    """S3 by method and path/query shape: `PUT ?versioning` for a bucket's subresource,
    else `PUT /{bucket}` (CreateBucket), `HEAD /{bucket}`, `GET /` (ListBuckets), ..."""
    url = urllib.parse.urlsplit(path)
    subresources = [k for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True) if v == ""]
    if subresources:
        return "%s ?%s" % (method, "&".join(subresources))
    depth = len([p for p in url.path.split("/") if p])
    shape = "/" if depth == 0 else "/{bucket}" if depth == 1 else "/{bucket}/{key}"
    return "%s %s" % (method, shape)


def operation(method, path, headers, body, fallback):
    """`service:Operation` of a signed request: the service from the SigV4 credential scope
    (`.../<region>/<service>/aws4_request`); the operation from X-Amz-Target (JSON
    protocols: DynamoDB, KMS), the `Action` parameter (query protocol: STS, IAM), or for
    S3 the method and path/query shape."""
    scope = _SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else fallback
    target = headers.get("X-Amz-Target")
    if target:
        return "%s:%s" % (service, target.split(".")[-1])
    if service == "s3":
        return "s3:" + _s3_operation(method, path)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    if "x-www-form-urlencoded" in headers.get("Content-Type", "") and body:
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
    if "Action" in params:
        return "%s:%s" % (service, params["Action"])
    return "%s:%s %s" % (service, method, path.split("?")[0])
