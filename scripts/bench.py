"""Cold-start and memory benchmark of the Lambda binaries, on this machine.

Runs each function's release binary the way Lambda does: a stand-in Runtime API on
loopback hands it events (from events/) and takes its answers, while the function talks
to the local AWS (DynamoDB Local for the table, moto for KMS). Per function it measures, over several fresh processes:
  - init: process start -> first `GET /runtime/invocation/next` (what Lambda bills as Init);
  - first: the first invocation (cold clients: TLS-free here, the local AWS on loopback);
  - warm p50: further invocations in the same process;
  - peak RSS (VmHWM) after the invocations.
Usage (scripts/bench.sh sets it up): bench.py MOTO_URL DYNAMODB_URL BIN_DIR [runs] [warm]
"""

import http.server
import json
import os
import pathlib
import queue
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import uuid

import boto3

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_ID = "01JD5Z8Y6QJ4ZC3N1W7R8T9V0X"


class Runtime:
    """The Lambda Runtime API, one function process at a time."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_next = None
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: without this, Nagle plus
            # delayed ACKs add ~40 ms to every invocation and measure the harness.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if runtime.first_next is None:
                    runtime.first_next = time.perf_counter()
                event = runtime.events.get()
                if event is None:  # tell the process to wait forever; the bench kills it
                    time.sleep(30)
                    return
                body = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                runtime.answers.put((time.perf_counter(), self.path, payload))

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # The bench kills each process mid-connection: a reset is expected.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = "127.0.0.1:%d" % self.server.server_address[1]


def bootstrap(moto_url, dynamodb_url):
    session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    ddb = session.client("dynamodb", endpoint_url=dynamodb_url)
    table = "bench-" + uuid.uuid4().hex[:8]
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("pk", "entity", "name_key", "view_pk", "view_sk", "sweep_pk", "sweep_at",
                                        "history_of", "history_at")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        # As shared/src/aws/dynamo/layout.rs `create_table` (history needs by_history).
        GlobalSecondaryIndexes=[{
            "IndexName": "by_name",
            "KeySchema": [{"AttributeName": "entity", "KeyType": "HASH"}, {"AttributeName": "name_key", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }, {
            "IndexName": "by_viewer",
            "KeySchema": [{"AttributeName": "view_pk", "KeyType": "HASH"}, {"AttributeName": "view_sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["labels"]},
        }, {
            "IndexName": "by_bucket_sweep",
            "KeySchema": [{"AttributeName": "sweep_pk", "KeyType": "HASH"}, {"AttributeName": "sweep_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }, {
            "IndexName": "by_history",
            "KeySchema": [{"AttributeName": "history_of", "KeyType": "HASH"}, {"AttributeName": "history_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    kms = session.client("kms", endpoint_url=moto_url)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    hmac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    return table, key, hmac


def function_env(moto_url, dynamodb_url, table, key, hmac):
    """The environment a function gets, as Lambda and the template set it."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "TABLE_NAME": table,
        "KMS_KEY_ID": key,
        "HMAC_KEY_ID": hmac,
        "RUST_LOG": "warn",
    }


def event(name, n):
    text = (REPO / "events" / name).read_text()
    ev = json.loads(text)
    if name.startswith("create-integration"):
        body = json.loads(ev["body"])
        body["name"] = "bench-%d-%s" % (n, uuid.uuid4().hex[:6])
        ev["body"] = json.dumps(body)
    return ev


CASES = [
    ("create-integration", "create-integration.post.json"),
    ("manage-integrations", "manage-integrations.list.json"),
    ("test-connection", "test-connection.setup-policies.json"),
    ("provision-bucket", "provision-bucket.get.json"),
]


def run_once(binary, event_name, env, warm):
    rt = Runtime()
    child_env = dict(env, AWS_LAMBDA_RUNTIME_API=rt.address)
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary)], env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    durations = []
    try:
        for n in range(warm + 1):
            rt.events.put(event(event_name, n))
            sent = time.perf_counter()
            done, path, payload = rt.answers.get(timeout=30)
            if not path.endswith("/response"):
                raise SystemExit("%s answered %s: %s" % (binary.name, path, payload[:300]))
            status = json.loads(payload).get("statusCode")
            if status is None or status >= 500:
                raise SystemExit("%s returned %s: %s" % (binary.name, status, payload[:300]))
            durations.append((done - sent) * 1000)
        rt.events.put(None)
        time.sleep(0.05)
        rss_kb = 0
        for line in open("/proc/%d/status" % proc.pid):
            if line.startswith("VmHWM:"):
                rss_kb = int(line.split()[1])
    finally:
        proc.kill()
        proc.wait()
        rt.server.shutdown()
    init_ms = (rt.first_next - start) * 1000
    return init_ms, durations[0], durations[1:], rss_kb / 1024


def main():
    moto_url, dynamodb_url, bin_dir = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    warm = int(sys.argv[5]) if len(sys.argv) > 5 else 20
    table, key, hmac = bootstrap(moto_url, dynamodb_url)
    env = function_env(moto_url, dynamodb_url, table, key, hmac)
    print("%-20s %10s %10s %10s %10s" % ("function", "init p50", "first", "warm p50", "peak RSS"))
    for function, event_name in CASES:
        results = [run_once(bin_dir / function, event_name, env, warm) for _ in range(runs)]
        init = statistics.median(r[0] for r in results)
        first = statistics.median(r[1] for r in results)
        warm_p50 = statistics.median(d for r in results for d in r[2]) if warm else float("nan")
        rss = max(r[3] for r in results)
        print("%-20s %8.1fms %8.1fms %8.2fms %8.1fMB" % (function, init, first, warm_p50, rss))


if __name__ == "__main__":
    main()
