"""Runtime benchmark of the Lambda functions (issue 19), run by `bash scripts/bench.sh`.

Every function's release `bootstrap` runs as Lambda runs it: a stand-in Runtime API on
loopback (scripts/bench.py's `Runtime`) hands it events and takes its answers, while it
talks to the local AWS (DynamoDB Local, moto). Next to the four functions run the floor
(`hello-floor`, a hello-world `lambda_runtime` binary built with the same profile) and
a Python 3 + boto3 peer of create (scripts/peer/), under the same loop. Parts:
  1. cold start: exec -> first `GET .../invocation/next` (init), and exec -> the first
     response posted (init + first invocation), over fresh processes taking turns;
  2. warm cost per route: latency over one warm process, and the process's CPU time per
     invocation from /proc/<pid>/task/*/schedstat (ns, user + sys, all threads); the
     routes include update, Test Connection (unsaved with and without a role, saved) and
     provisioning (one run, a stream batch) against a customer account in moto
     (scripts/bench_aws.py), each answer checked (status, outcome, batch failures);
  3. peak RSS (VmHWM) per function;
  4. the Python peer next to create, with ratios;
  5. AWS requests and sequential rounds per operation, through a counting proxy that
     names each request by its service and operation (scripts/bench_aws.py `operation`).
Writes its section of BENCHMARKS.md (between the bench-runtime markers).
Usage: bench_runtime.py MOTO_URL DYNAMODB_URL BIN_DIR [cold-starts] [warm-invocations]
"""

import http.client
import http.server
import json
import math
import os
import pathlib
import platform
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter, deque

import boto3

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
import bench  # noqa: E402
import bench_aws  # noqa: E402

REPO = bench.REPO
OUT = REPO / "BENCHMARKS.md"
START, END = "<!-- bench-runtime:start -->", "<!-- bench-runtime:end -->"
LOGS = REPO / ".local" / "bench-runtime"
FUNCTIONS = ["create-integration", "manage-integrations", "test-connection", "provision-bucket"]
WARMUP = 20
# Owner of the integrations the saved test and provisioning use: not the listing's owner,
# so get and the listings keep reading the same 20 integrations.
OTHER_OWNER = "platform-user-77"
# Records per stream batch: the template's BatchSize for the provisioner's stream trigger.
BATCH_RECORDS = 10
# Invocations per route in part 5: the first (cold connections), then warm ones.
TRIP_CALLS = 6
# Route labels that the round-trip minimums and the checks refer to.
UPDATE = "update (PATCH, new description)"
TEST_ROLE = "test, unsaved, role + bucket"
TEST_NO_ROLE = "test, unsaved, no role, bucket"
TEST_SAVED = "test, saved (role + bucket)"
PROVISION = "provisioning run (stream, 1 record)"
BATCH = "stream batch (%d records)" % BATCH_RECORDS


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


class Proc:
    """One function process under its own Runtime API stand-in."""

    def __init__(self, name, cmd, env):
        self.name = name
        self.rt = bench.Runtime()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / (name + ".log"), "ab")
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=dict(env, AWS_LAMBDA_RUNTIME_API=self.rt.address),
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def ready(self):
        """Waits for the first `next`; returns init (exec -> first next) in ms."""
        deadline = time.perf_counter() + 30
        while self.rt.first_next is None:
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit("%s never asked for an event (see %s)" % (self.name, self.log.name))
            time.sleep(0.0002)
        return (self.rt.first_next - self.start) * 1000

    def invoke(self, event, check=None):
        """One invocation: (latency ms, time the response was posted, status, body).
        `check(answer)` returns what is wrong with the answer (None when it is as expected);
        by default an API Gateway answer with a status below 400."""
        self.rt.events.put(event)
        sent = time.perf_counter()
        done, path, payload = self.rt.answers.get(timeout=30)
        if not path.endswith("/response"):
            raise SystemExit("%s answered %s: %s" % (self.name, path, payload[:300]))
        answer = json.loads(payload)
        wrong = (check or http_ok)(answer)
        if wrong:
            raise SystemExit("%s: unexpected answer (%s): %s" % (self.name, wrong, payload[:800]))
        return (done - sent) * 1000, done, answer.get("statusCode"), answer.get("body")

    def cpu_ns(self):
        """CPU time of all the process's threads so far (schedstat's first field, ns)."""
        total = 0
        task_dir = "/proc/%d/task" % self.proc.pid
        for tid in os.listdir(task_dir):
            try:
                with open("%s/%s/schedstat" % (task_dir, tid)) as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that ended between the listing and the read
        return total

    def hwm_mb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.rt.events.put(None)
        self.proc.kill()
        self.proc.wait()
        self.rt.server.shutdown()
        self.rt.server.server_close()
        self.log.close()


def http_ok(answer):
    status = answer.get("statusCode")
    if status is None or status >= 400:
        return "status %s" % status
    return None


def test_passed(steps, recorded=False):
    """Check of a Test Connection answer: 200, outcome `passed`, these steps all passed,
    the state bucket `owned` (it exists in the account); a saved test also recorded."""
    def check(answer):
        if answer.get("statusCode") != 200:
            return "status %s, expected 200" % answer.get("statusCode")
        report = json.loads(answer.get("body") or "{}")
        got = [(s.get("name"), s.get("status")) for s in report.get("steps", [])]
        if report.get("outcome") != "passed" or got != [(s, "passed") for s in steps]:
            return "outcome %s, steps %s" % (report.get("outcome"), got)
        if (report.get("state_bucket") or {}).get("availability") != "owned":
            return "state bucket %s" % report.get("state_bucket")
        if recorded and not (report.get("recorded") is True and (report.get("last_test") or {}).get("ok") is True):
            return "not recorded as last_test: recorded %s, last_test %s" % (
                report.get("recorded"), report.get("last_test"))
        return None
    return check


def no_batch_failures(answer):
    """Check of a stream answer: no record reported failed."""
    if answer.get("batchItemFailures") != []:
        return "batchItemFailures %s" % answer.get("batchItemFailures")
    return None


class CountingProxy:
    """Forwards HTTP to one upstream and records each request: (start, end, operation),
    the operation named by its service and operation (`bench_aws.operation`).
    `end` is taken when the upstream's answer is in, before it is passed on, so a request
    the client sends only after that answer always starts after it ends."""

    def __init__(self, upstream, service):
        self.records = []
        lock = threading.Lock()
        target = urllib.parse.urlparse(upstream)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def forward(self):
                t0 = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                op = bench_aws.operation(self.command, self.path, self.headers, body, service)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                for attempt in range(2):
                    conn = getattr(self.server_thread_state, "conn", None)
                    if conn is None:
                        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                        self.server_thread_state.conn = conn
                    try:
                        conn.request(self.command, self.path, body, headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (http.client.HTTPException, OSError):
                        conn.close()
                        self.server_thread_state.conn = None
                        if attempt:
                            raise
                t1 = time.perf_counter()
                with lock:
                    proxy.records.append((t0, t1, op))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

        Handler.server_thread_state = threading.local()

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def between(self, t0, t1):
        return sorted(r for r in self.records if t0 <= r[0] <= t1)


def round_groups(records):
    """Sequential rounds: groups of requests whose intervals overlap (chained)."""
    groups, end = [], None
    for start, stop, op in sorted(records):
        if end is None or start > end:
            groups.append([])
            end = stop
        else:
            end = max(end, stop)
        groups[-1].append(op)
    return groups


def rounds(records):
    return len(round_groups(records))


def sequence(records):
    """The requests by round: rounds joined by →, the requests of one round (sent
    together, in no fixed order) sorted and joined by +, the same operation n times in a
    round as n×."""
    out = []
    for ops in round_groups(records):
        counts = Counter(ops)
        out.append(" + ".join(op if counts[op] == 1 else "%d× %s" % (counts[op], op) for op in sorted(counts)))
    return " → ".join(out) or "none"


def batch_sequence(records, single):
    """A stream batch's requests: its records run 2 at a time (shared/src/events/stream.rs),
    so their requests overlap and the rounds say little; what counts is that each record
    made one run's requests."""
    got = Counter(r[2] for r in records)
    per_record = Counter(r[2] for r in single)
    if single and got == Counter({op: n * BATCH_RECORDS for op, n in per_record.items()}):
        return "%d records, 2 at a time, each with the %d requests of one run (the row above)" % (
            BATCH_RECORDS, len(single))
    return "%d records, 2 at a time: %s" % (BATCH_RECORDS, ", ".join(
        "%d× %s" % (got[op], op) for op in sorted(got)))


def load_event(name, ident=None, **changes):
    text = (REPO / "events" / name).read_text()
    if ident:
        text = text.replace(bench.SAMPLE_ID, ident)
    ev = json.loads(text)
    ev.update(changes)
    return ev


def as_owner(ev, sub):
    ev["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    return ev


class Events:
    """Fresh events per invocation (creates need unique names)."""

    def __init__(self):
        self.n = 0
        self.ident = None
        self.account = None        # bench_aws.customer_account(): the user's keys and role
        self.update_ident = None   # the integration update changes (one of the owner's 20)
        self.update_labels = None  # its labels, sent unchanged
        self.update_rev = 1        # its revision: If-Match of the next update
        self.saved_ident = None    # the integration the saved test tests
        self.pending = deque()     # stream records of integrations with a pending bucket
        self.provisioned = []      # their keys, as handed to the provisioner

    def create(self):
        self.n += 1
        ev = load_event("create-integration.post.json")
        body = json.loads(ev["body"])
        body["name"] = "bench-%d-%s" % (self.n, os.urandom(3).hex())
        # Half the integrations carry the label the label listing asks for.
        body["labels"] = ["production", "billing"] if self.n % 2 else ["staging"]
        ev["body"] = json.dumps(body)
        return ev

    def get(self):
        return load_event("manage-integrations.get.json", self.ident)

    def history(self):
        return load_event("manage-integrations.history.json", self.ident)

    def list_all(self):
        return load_event("manage-integrations.list.json", rawQueryString="limit=20",
                          queryStringParameters={"limit": "20"})

    def list_label(self):
        return load_event("manage-integrations.list.json")

    def setup_policies(self):
        return load_event("test-connection.setup-policies.json")

    def bucket_get(self):
        return load_event("provision-bucket.get.json", self.ident)

    def update(self):
        """The sample PATCH for the update target, If-Match its current revision (each
        call bumps it), a new description each call, its labels unchanged."""
        ev = load_event("manage-integrations.patch.json", self.update_ident)
        ev["headers"]["if-match"] = '"%d"' % self.update_rev
        body = json.loads(ev["body"])
        body["description"] = "Production account (billing), edit %06d" % self.update_rev
        body["labels"] = self.update_labels
        ev["body"] = json.dumps(body)
        self.update_rev += 1
        return ev

    def form(self, name, role=True):
        """The Test Connection form (events/test-connection.form.json) with the customer
        account's keys, and its role and ExternalId unless `role` is false."""
        body = json.loads(load_event("test-connection.form.json")["body"])
        body.update(name=name, aws_account_id=bench_aws.ACCOUNT, create_state_bucket=True,
                    aws_access_key_id=self.account["access_key_id"],
                    aws_secret_access_key=self.account["secret_access_key"])
        if role:
            body.update(aws_assumed_role_name=self.account["role"], aws_external_id=bench_aws.EXTERNAL_ID)
        else:
            body.pop("aws_assumed_role_name", None)
            body.pop("aws_external_id", None)
        return body

    def test_role(self):
        return load_event("test-connection.form.json", body=json.dumps(self.form("aws-production")))

    def test_no_role(self):
        return load_event("test-connection.form.json", body=json.dumps(self.form("aws-production", role=False)))

    def test_saved(self):
        return as_owner(load_event("test-connection.saved.json", self.saved_ident), OTHER_OWNER)

    def create_other(self, what):
        """A create, by the other owner, of an integration with the customer account's keys,
        role and ExternalId and a state bucket requested."""
        self.n += 1
        ev = as_owner(load_event("create-integration.post.json"), OTHER_OWNER)
        body = json.loads(ev["body"])
        body.update(self.form("bench-%s-%d-%s" % (what, self.n, os.urandom(3).hex())))
        body["labels"] = ["bench"]
        ev["body"] = json.dumps(body)
        return ev

    def records(self, n):
        records = [self.pending.popleft() for _ in range(n)]
        self.provisioned += [r["dynamodb"]["Keys"]["pk"]["S"] for r in records]
        return {"Records": records}

    def provision_one(self):
        return self.records(1)

    def provision_batch(self):
        return self.records(BATCH_RECORDS)


def main():
    moto_url, dynamodb_url, bin_dir = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    cold = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    warm = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    table, key, hmac = bench.bootstrap(moto_url, dynamodb_url)
    # The peer writes its own table: its items are not the functions' record format.
    peer_table = bench.bootstrap(moto_url, dynamodb_url)[0]
    # moto answers every request with `Connection: close`, so each KMS, STS or S3 call
    # would open a new TCP connection, which AWS's endpoints do not make clients do
    # (measured: about 0.5 ms of CPU per create). The functions and the peer reach moto
    # through a keep-alive relay instead; the relay's own work is not in their CPU.
    relay = CountingProxy(moto_url, "moto")
    env = bench.function_env(relay.url, dynamodb_url, table, key, hmac)
    peer_env = dict(env, TABLE_NAME=peer_table, PYTHONDONTWRITEBYTECODE="1")
    commands = {f: ([str(bin_dir / f)], env) for f in FUNCTIONS + ["hello-floor"]}
    commands["python-peer"] = ([sys.executable, str(REPO / "scripts" / "peer" / "runtime.py")], peer_env)
    ev = Events()

    def start(name, environment=None):
        cmd, e = commands[name]
        return Proc(name, cmd, environment or e)

    # Warm invocations per row: a stream batch provisions BATCH_RECORDS integrations, so
    # it runs a tenth as many batches (as many provisioning runs as the single-record row).
    batches = max(1, warm // BATCH_RECORDS)
    batch_warmup = 2
    load_before = os.getloadavg()
    ev.account = bench_aws.customer_account(moto_url)
    # Seed: 20 integrations of the caller, one of them read by get/history/state-bucket,
    # another (the last) changed by update; then, by another owner, the integration the
    # saved test tests and the fresh integrations with a pending bucket that the
    # provisioning rows provision, one per record.
    p = start("create-integration")
    p.ready()
    for _ in range(20):
        body = json.loads(p.invoke(ev.create())[3])
        ev.ident = ev.ident or body["id"]
    ev.update_ident, ev.update_labels, ev.update_rev = body["id"], body["labels"], body["revision"]
    ev.saved_ident = json.loads(p.invoke(ev.create_other("saved"))[3])["id"]
    pending = (WARMUP + warm + TRIP_CALLS) + BATCH_RECORDS * (batch_warmup + batches + TRIP_CALLS)
    pks = ["I#" + json.loads(p.invoke(ev.create_other("pending"))[3])["id"] for _ in range(pending)]
    p.stop()
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_url, region_name=bench_aws.REGION,
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    ev.pending.extend(bench_aws.StreamRecords(ddb, table).inserts(pks))

    # 1. Cold starts, the processes taking turns so the machine's drift hits all alike.
    first_event = {
        "hello-floor": ev.setup_policies, "create-integration": ev.create,
        "manage-integrations": ev.list_label, "test-connection": ev.setup_policies,
        "provision-bucket": ev.bucket_get, "python-peer": ev.create,
    }
    cold_rows = {name: [] for name in first_event}
    for _ in range(cold):
        for name, make in first_event.items():
            p = start(name)
            try:
                init = p.ready()
                latency, done, _, _ = p.invoke(make())
                cold_rows[name].append((init, latency, (done - p.start) * 1000, p.hwm_mb()))
            finally:
                p.stop()
        print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)

    # 2./3. Warm cost per route, one fresh process each; create last (it grows the list).
    # (function, route, event maker, answer check, invocations, warm-up invocations)
    with_role = ["credentials", "account", "assume_role", "role_identity", "state_bucket"]
    routes = [
        ("hello-floor", "hello (floor)", ev.setup_policies, None, warm, WARMUP),
        ("manage-integrations", "get", ev.get, None, warm, WARMUP),
        ("manage-integrations", "list, limit 20", ev.list_all, None, warm, WARMUP),
        ("manage-integrations", "list, label, limit 20", ev.list_label, None, warm, WARMUP),
        ("manage-integrations", "history, limit 20", ev.history, None, warm, WARMUP),
        ("manage-integrations", UPDATE, ev.update, None, warm, WARMUP),
        ("test-connection", "setup-policies (no AWS call)", ev.setup_policies, None, warm, WARMUP),
        ("test-connection", TEST_ROLE, ev.test_role, test_passed(with_role), warm, WARMUP),
        ("test-connection", TEST_NO_ROLE, ev.test_no_role,
         test_passed(["credentials", "account", "state_bucket"]), warm, WARMUP),
        ("test-connection", TEST_SAVED, ev.test_saved, test_passed(with_role, recorded=True), warm, WARMUP),
        ("provision-bucket", "GET state-bucket", ev.bucket_get, None, warm, WARMUP),
        ("provision-bucket", PROVISION, ev.provision_one, no_batch_failures, warm, WARMUP),
        ("provision-bucket", BATCH, ev.provision_batch, no_batch_failures, batches, batch_warmup),
        ("create-integration", "create", ev.create, None, warm, WARMUP),
        ("python-peer", "create (Python peer)", ev.create, None, warm, WARMUP),
    ]
    warm_rows = []
    for name, route, make, check, n, warmup in routes:
        p = start(name)
        try:
            p.ready()
            for _ in range(warmup):
                p.invoke(make(), check)
            events = [make() for _ in range(n)]
            cpu0, wall0 = p.cpu_ns(), time.perf_counter()
            lat = [p.invoke(e, check)[0] for e in events]
            cpu1, wall1 = p.cpu_ns(), time.perf_counter()
            warm_rows.append((name, route, statistics.median(lat), pct(lat, 99),
                              (cpu1 - cpu0) / n / 1e6, (wall1 - wall0) * 1000 / n, p.hwm_mb(), n, warmup))
        finally:
            p.stop()
        print("warm %s: p50 %.2f ms, CPU %.3f ms, VmHWM %.1f MB" % (
            route, warm_rows[-1][2], warm_rows[-1][4], warm_rows[-1][6]), file=sys.stderr)

    # 5. Round trips, through counting proxies (a separate pass: the proxy adds latency).
    moto_proxy, ddb_proxy = CountingProxy(moto_url, "moto"), CountingProxy(dynamodb_url, "dynamodb")
    proxied = {"AWS_ENDPOINT_URL": moto_proxy.url, "AWS_ENDPOINT_URL_DYNAMODB": ddb_proxy.url}
    trip_rows = []
    last_run = {}  # route -> its warm call's records
    for name, route, make, check, _, _ in routes[1:]:
        cmd, e = commands[name]
        p = Proc(name, cmd, dict(e, **proxied))
        try:
            p.ready()
            init_reqs = moto_proxy.between(p.start, p.rt.first_next) + ddb_proxy.between(p.start, p.rt.first_next)
            per_call = []
            for i in range(TRIP_CALLS):  # the first is cold (connections); the others are what a warm call does
                event = make()
                t0 = time.perf_counter()
                _, done, _, _ = p.invoke(event, check)
                recs = sorted(moto_proxy.between(t0, done) + ddb_proxy.between(t0, done))
                per_call.append(recs)
            # A request's start is seen when the proxy's thread gets to it: on a busy machine
            # that can come after a request sent together with it has ended, which splits a
            # round; it never merges two (a request sent after an answer starts after that
            # answer's end). So the warm call with the fewest rounds (the last of them) is
            # the one shown.
            warm_calls = per_call[1:]
            fewest = min(rounds(r) for r in warm_calls)
            warm_recs = [r for r in warm_calls if rounds(r) == fewest][-1]
            if route == BATCH:
                single = last_run.get(PROVISION, [])
                ops, first_ops = batch_sequence(warm_recs, single), batch_sequence(per_call[0], single)
            else:
                ops, first_ops = sequence(warm_recs), sequence(per_call[0])
            last_run[route] = warm_recs
            if Counter(r[2] for r in per_call[0]) != Counter(r[2] for r in warm_recs):
                ops += " (first call: %s)" % first_ops
            counts = sorted({len(r) for r in warm_calls})
            if len(counts) > 1:
                ops += " (warm calls made %d to %d requests)" % (counts[0], counts[-1])
            trip_rows.append((route, len(init_reqs), len(per_call[0]), len(warm_recs), fewest, ops))
        finally:
            p.stop()
    moto_proxy.server.shutdown()
    ddb_proxy.server.shutdown()
    check_provisioned(ddb, table, ev.provisioned)
    load_after = os.getloadavg()

    section = render(cold, warm, cold_rows, warm_rows, trip_rows, load_before, load_after)
    write_section(section)
    print(section)


def check_provisioned(ddb, table, pks):
    """Every integration handed to the provisioner ended `ready` after exactly one attempt:
    each record was a full provisioning run, none skipped or retried."""
    wrong = []
    for i in range(0, len(pks), 100):
        keys = [{"pk": {"S": pk}} for pk in pks[i:i + 100]]
        while keys:
            out = ddb.batch_get_item(RequestItems={table: {
                "Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk, state_bucket"}})
            for item in out["Responses"].get(table, []):
                b = item.get("state_bucket", {}).get("M", {})
                status, attempts = b.get("status", {}).get("S"), b.get("attempts", {}).get("N")
                if (status, attempts) != ("ready", "1"):
                    wrong.append("%s: %s after %s attempts (%s)" % (
                        item["pk"]["S"], status, attempts, b.get("reason", {}).get("S", "")))
            keys = out.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    if wrong:
        raise SystemExit("%d of %d provisioned integrations are not ready after one run: %s" % (
            len(wrong), len(pks), "; ".join(wrong[:5])))
    print("provisioning: all %d integrations ready after one run each" % len(pks), file=sys.stderr)


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
    except OSError:
        return ""


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = sh("git", "rev-parse", "--short", "HEAD")
    # BENCHMARKS.md is this script's own output: a change there is not a change to what ran.
    if sh("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"):
        commit += " with uncommitted changes"
    import boto3
    import botocore
    return model, commit, boto3.__version__, botocore.__version__


def verdict(ok, gap):
    return "PASS" if ok else "FAIL (%s)" % gap


def render(cold, warm, cold_rows, warm_rows, trip_rows, load_before, load_after):
    model, commit, boto3_v, botocore_v = machine()
    out = []
    w = out.append
    w("## Runtime: cold start, warm cost, memory, round trips, Python peer (issue 19)")
    w("")
    w("`bash scripts/bench.sh [cold-starts] [warm-invocations]` (scripts/bench_runtime.py; defaults 20 and 200). "
      "Each function's release `bootstrap` (`cargo build --release --workspace --bins`, the workspace's release "
      "profile) runs under a stand-in Lambda Runtime API on loopback (scripts/bench.py), against DynamoDB Local "
      "and moto on loopback. The floor is `hello-floor` (tests/src/bin/hello-floor.rs: a hello-world "
      "`lambda_runtime` function as in lambda_runtime's examples, on `#[tokio::main]`'s multi-thread runtime where the functions run a current-thread one; same profile); the peer is scripts/peer/ (the same create in "
      "Python 3 + boto3, module-level clients, under a minimal runtime loop of the same kind).")
    w("")
    w("- run: %s, commit %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), commit))
    w("- machine: %s, %s, %d cores; %s" % (platform.machine(), model, os.cpu_count(), platform.platform()))
    w("- %s; Python %s, boto3 %s (botocore %s); moto 5 and DynamoDB Local 3 on loopback" % (
        sh("rustc", "-V") or "rustc ?", platform.python_version(), boto3_v, botocore_v))
    w("- load average (1, 5, 15 min): %.2f %.2f %.2f before, %.2f %.2f %.2f after" % (load_before + load_after))
    w("")
    w("The emulators on loopback are not AWS: there is no TLS, no network and no service-side latency of AWS "
      "here, and moto (Python) and DynamoDB Local (Java) share this machine's cores with the functions. Init and "
      "CPU per invocation are the functions' own work and carry over; latencies that include an AWS call say "
      "more about the emulators than about AWS. moto closes every connection (`Connection: close`), which AWS "
      "endpoints do not, so the functions and the peer reach it through a keep-alive relay on loopback (without "
      "it each KMS call of a create opened a TCP connection: about 0.5 ms more CPU per create).")
    w("")

    # 1. Cold start.
    floor = statistics.median(r[0] for r in cold_rows["hello-floor"])
    peer_init = statistics.median(r[0] for r in cold_rows["python-peer"])
    w("### 1. Cold start (%d fresh processes each, taking turns)" % cold)
    w("")
    w("*Init*: exec of the bootstrap to its first `GET /2018-06-01/runtime/invocation/next` (every client built). "
      "*Init + first*: exec to the first response posted. Target: init p50 within 3 ms of the floor's, and at "
      "least 60x faster than the Python peer's.")
    w("")
    w("| bootstrap (first event) | init p50 | init p90 | first invocation p50 | init + first p50 | init + first p90 "
      "| init minus floor (≤ 3 ms) | peer init / init (≥ 60x) |")
    w("|---|---:|---:|---:|---:|---:|---|---|")
    first_names = {"hello-floor": "any", "create-integration": "create", "manage-integrations": "list, label",
                   "test-connection": "setup-policies", "provision-bucket": "GET state-bucket",
                   "python-peer": "create"}
    for name, rows in cold_rows.items():
        init = [r[0] for r in rows]
        total = [r[2] for r in rows]
        p50 = statistics.median(init)
        if name in FUNCTIONS:
            diff = p50 - floor
            vs_floor = "+%.2f ms: %s" % (diff, verdict(diff <= 3, "%.2f ms over" % (diff - 3)))
            ratio = peer_init / p50
            vs_peer = "%.0fx: %s" % (ratio, verdict(ratio >= 60, "%.0fx short" % (60 - ratio)))
        else:
            vs_floor = vs_peer = "-"
        w("| %s (%s) | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s | %s |" % (
            name, first_names[name], p50, pct(init, 90), statistics.median(r[1] for r in rows),
            statistics.median(total), pct(total, 90), vs_floor, vs_peer))
    w("")

    # 2. Warm cost.
    w("### 2. Warm cost per route (%d invocations on one warm process after %d warm-up, unless the row says "
      "otherwise)" % (warm, WARMUP))
    w("")
    w("*Latency*: the event handed over to the response posted, seen from the Runtime API stand-in (so it includes "
      "the stand-in's own hand-over, see the floor's row, and the emulators' work). *CPU*: the function process's "
      "CPU time (user + sys, all threads, from /proc/<pid>/task/*/schedstat) over the batch divided by the "
      "invocations. Target: CPU at most 1 ms per invocation for create, get and list. The owner has 20 "
      "integrations (half labelled `production`) when get and the listings run; get, history and the "
      "state-bucket read one of them. Every answer is checked; an unexpected one stops the bench.")
    w("")
    batch = next(r for r in warm_rows if r[1] == BATCH)
    w("The routes that call the user's AWS run against a customer account in moto's default account %s "
      "(scripts/bench_aws.py): an IAM user with an access key and a policy allowing `sts:AssumeRole` on a role "
      "whose trust policy names that user with the ExternalId `%s`, and the account's state bucket `%s`, "
      "created beforehand. The bench's moto does not enforce IAM (the policies are there, moto evaluates none), "
      "but the keys and the role are real principals: GetCallerIdentity and AssumeRole answer with their ARNs." % (
          bench_aws.ACCOUNT, bench_aws.EXTERNAL_ID, bench_aws.BUCKET))
    w("")
    w("- *%s*: events/manage-integrations.patch.json for the owner's 20th integration, `If-Match` its current "
      "revision, a new description each call (its labels sent unchanged): every call a real write (revision + 1, "
      "an audit event), answered 200." % UPDATE)
    w("- *%s*: `POST /integrations/aws/test-connection` with events/test-connection.form.json's fields, the "
      "user's keys, the role and the ExternalId, `create_state_bucket` true; every answer 200 with outcome "
      "`passed`, steps credentials, account, assume_role, role_identity and state_bucket passed, the bucket "
      "`owned`." % TEST_ROLE)
    w("- *%s*: the same form without a role or ExternalId: credentials, account and state_bucket passed "
      "(the bucket checked with the user's own keys)." % TEST_NO_ROLE)
    w("- *%s*: events/test-connection.saved.json for an integration saved with the same fields (by another "
      "owner, so the listings above keep their 20): the role test as above with the stored secret, "
      "recorded as `last_test` (ok) on every call." % TEST_SAVED)
    w("- *%s*: what the table's stream hands the provisioner when an integration asks for a bucket: an event "
      "holding one INSERT record whose new image is the integration's record with its bucket `pending` "
      "(read back from the table as created; events/provision-bucket.stream.json's shape). Each invocation "
      "gets a different integration, created beforehand, so each is a full run: claim the bucket, open the "
      "secret, assume the role, create the bucket (it exists, so S3 answers 200 and the run adopts it), "
      "confirm the owner, apply the 7 hardening settings, record `ready`. Every answer has no "
      "`batchItemFailures`, and afterwards every one of these integrations is `ready` after exactly one "
      "attempt." % PROVISION)
    w("- *%s*: %d such records in one event (the template's `BatchSize`), provisioned 2 at a time: "
      "%d batches after %d warm-up (%d provisioning runs, as many as the row above); p99 over %d batches is "
      "their maximum. Latency and CPU are per batch." % (
          BATCH, BATCH_RECORDS, batch[7], batch[8], batch[7] * BATCH_RECORDS, batch[7]))
    w("")
    w("| function | route | invocations (+ warm-up) | p50 | p99 | CPU per invocation | target (CPU ≤ 1 ms) |")
    w("|---|---|---:|---:|---:|---:|---|")
    targeted = {"get", "list, limit 20", "list, label, limit 20", "create"}
    for name, route, p50, p99, cpu, _, _, n, warmup in warm_rows:
        target = verdict(cpu <= 1, "%.2f ms over" % (cpu - 1)) if route in targeted else "-"
        w("| %s | %s | %d (+%d) | %.2f ms | %.2f ms | %.3f ms | %s |" % (
            name, route, n, warmup, p50, p99, cpu, target))
    w("")

    # 3. Memory.
    w("### 3. Peak RSS (VmHWM) per function")
    w("")
    w("The highest VmHWM over the cold starts (after their first invocation) and the warm processes (after "
      "their warm-up and invocations, see above; the route of the highest named when the function served "
      "several). Target: at most 10 MB.")
    w("")
    w("| bootstrap | peak RSS, cold | peak RSS, warm | target (≤ 10 MB) |")
    w("|---|---:|---:|---|")
    for name in ["hello-floor"] + FUNCTIONS + ["python-peer"]:
        c = max(r[3] for r in cold_rows[name])
        served = [r for r in warm_rows if r[0] == name]
        top = max(served, key=lambda r: r[6])
        wm = top[6]
        peak = max(c, wm)
        target = verdict(peak <= 10, "%.1f MB over" % (peak - 10)) if name in FUNCTIONS else "-"
        w("| %s | %.1f MB | %.1f MB%s | %s |" % (name, c, wm, " (%s)" % top[1] if len(served) > 1 else "", target))
    w("")

    # 4. Peer.
    def cold_stat(name, i):
        return statistics.median(r[i] for r in cold_rows[name])
    ours = next(r for r in warm_rows if r[1] == "create")
    peer = next(r for r in warm_rows if r[1] == "create (Python peer)")
    peer_rss = max(max(r[3] for r in cold_rows["python-peer"]), peer[6])
    our_rss = max(max(r[3] for r in cold_rows["create-integration"]), ours[6])
    w("### 4. Side by side: create-integration and its Python 3 + boto3 peer")
    w("")
    w("| measure | create-integration (Rust) | Python peer | peer / ours |")
    w("|---|---:|---:|---:|")
    for label, a, b, unit in (
            ("init p50", cold_stat("create-integration", 0), cold_stat("python-peer", 0), "ms"),
            ("first invocation p50", cold_stat("create-integration", 1), cold_stat("python-peer", 1), "ms"),
            ("init + first p50", cold_stat("create-integration", 2), cold_stat("python-peer", 2), "ms"),
            ("warm p50", ours[2], peer[2], "ms"), ("warm p99", ours[3], peer[3], "ms"),
            ("CPU per warm invocation", ours[4], peer[4], "ms"), ("peak RSS", our_rss, peer_rss, "MB")):
        w("| %s | %.2f %s | %.2f %s | %.1fx |" % (label, a, unit, b, unit, b / a))
    w("")
    ratio = cold_stat("python-peer", 0) / cold_stat("create-integration", 0)
    w("Target: init at least 60x faster than the peer's: %.0fx, %s." % (
        ratio, verdict(ratio >= 60, "%.0fx short" % (60 - ratio))))
    w("")

    # 5. Round trips.
    w("### 5. AWS requests and sequential rounds per operation")
    w("")
    w("Counted by a proxy in front of moto and DynamoDB Local (a separate pass; its latency is not in the tables "
      "above). A round is a group of requests whose intervals overlap: requests sent together count once. "
      "*Init* is requests between exec and the first `next`; *first call* the first invocation's (its "
      "connections are new); then %d warm invocations, of which the table shows the one with the fewest rounds "
      "(the proxy sees a request only when its thread gets to it, so on a busy machine a request sent together "
      "with another may seem to start after the other ended, splitting a round; it can never merge two). "
      "Each request is named by its "
      "service (the SigV4 credential scope) and operation (`X-Amz-Target`, or the `Action` of STS and IAM); "
      "S3 by method and path: `PUT /{bucket}` is CreateBucket, `HEAD /{bucket}` HeadBucket, `GET /` "
      "ListBuckets, `PUT ?versioning` a bucket setting. In the order: rounds are joined by →, requests of "
      "one round (sent together) by +, `n×` is one operation n times in a round. A stream batch's records "
      "are provisioned 2 at a time, so their requests overlap and its rounds depend on timing: its row counts "
      "the requests per record instead." % (TRIP_CALLS - 1))
    w("")
    minimum = {"create": 2, "get": 1, "list, limit 20": 1, "list, label, limit 20": 1, "create (Python peer)": 2,
               TEST_ROLE: 3, TEST_NO_ROLE: 1, PROVISION: 5}
    w("| route | init requests | first call requests | warm requests | warm rounds | minimum | requests, in order |")
    w("|---|---:|---:|---:|---:|---|---|")
    for route, init_n, first_n, warm_n, rnds, ops in trip_rows:
        m = minimum.get(route)
        target = ("%d: %s" % (m, verdict(rnds <= m, "%d over" % (rnds - m)))) if m else "-"
        w("| %s | %d | %d | %d | %d | %s | %s |" % (route, init_n, first_n, warm_n, rnds, target, ops))
    w("")
    w("Why a row is above its minimum, or how it reaches it:")
    w("")
    w("- *Listings, 2 rounds (minimum 1), kept on purpose.* A listing is a `Query` of each partition of "
      "`by_viewer` the caller may see (keys and labels only), then one strongly consistent `BatchGetItem` of "
      "the page's records. One round would need a copy of every record in each of its visibility entries (its "
      "owner's, up to 20 groups', an admin shard's) and every writer (updates, test results, provisioning) "
      "rewriting all of them, and the page would be only as fresh as the index: an integration deleted or "
      "unshared a moment ago could still be listed to someone who may no longer see it. The second round is "
      "the record deciding.")
    w("- *A label listing* reads 4 x (limit + 1) entries of a partition first (only matches come back, and only "
      "their sort keys): one `Query` round while at least a quarter of the caller's integrations carry the "
      "label, one more per page while matches are sparser.")
    w("- *Test Connection* sends together what needs no earlier answer: without a role the keys' identity and "
      "the bucket check (1 round); with a role the keys' identity with `AssumeRole`, then the role's identity "
      "with the bucket check (2 rounds). An answer made moot by an earlier failure is dropped and its step "
      "reported as skipped (shared/src/app/connection/mod.rs, tested by `independent_calls_go_out_together`).")
    w("- *A provisioning run from the stream* starts from the record in the stream image: the claim (conditional "
      "on the record being unchanged since the image) goes with KMS `Decrypt`, and the owner check with the "
      "hardening calls, each of which sends `ExpectedBucketOwner`: 5 rounds with a role (claim + Decrypt, "
      "AssumeRole, CreateBucket, owner check + hardening, the record), 4 without (shared/src/app/tests/rounds.rs).")
    w("- *The saved test* adds the record's read, KMS `Decrypt` and recording the result to the unsaved test's "
      "rounds; the first listing after start also derives the page-token key with KMS `GenerateMac`, once per "
      "process.")
    w("")
    w("### 6. What was tried, measured here")
    w("")
    w("Measured on this machine in December 2026 (not re-run by this script). CPU: one warm process, 300 "
      "invocations, schedstat as above. Instructions: user-space instructions per invocation under valgrind's "
      "callgrind, 50 invocations after 10, which do not depend on the machine's load (valgrind hides SHA-NI, so "
      "SigV4's hashing is over-counted there; natively it uses SHA-NI on x86_64 and the SHA-2 extensions on "
      "Graviton).")
    w("")
    w("| change | effect | kept |")
    w("|---|---|---|")
    w("| tokio current-thread runtime instead of `#[tokio::main]`'s multi-thread one (a Lambda instance serves one "
      "request at a time) | CPU per invocation: get 0.95 -> 0.50 ms, list 2.48 -> 1.65 ms, create 2.00 -> 1.54 ms | "
      "yes |")
    w("| a stream batch's records 2 at a time instead of all 10 at once | provision-bucket's peak RSS under a batch "
      "of 10: 13.4 -> 9.8 MB (4 at a time: 10.6 MB); a burst of 10 pending buckets takes 5 runs' time | yes |")
    w("| HTTPS connectors built on first use, not per SDK client at start (`OnFirstUse`) | init 10.6-11.8 -> "
      "4.4-5.3 ms | yes |")
    w("| a listing's body serialised straight to text (no `serde_json::Value` in between) | list: 8.58 -> 7.79 M "
      "instructions (-9%) | yes |")
    w("| `opt-level = 3` instead of `\"z\"` for the whole build | instructions: get -45%, list -43%, create -39%; "
      "stripped binaries +45% (create 6.29 -> 9.16 MB) | no: the zips must stay under 3,000,000 bytes (issue 17) |")
    w("| `opt-level = 3` for 10 hot crates (integrations-core, aws-smithy-json, aws-sigv4, sha2, hmac, serde_json, "
      "serde_dynamo, aws-smithy-runtime, hashbrown, aws-smithy-types) | instructions: get -19%, list -28%, create "
      "-19%; binaries +0.6 MB (+10%) | no: same reason |")
    w("| `opt-level = 3` for 5 of them (aws-smithy-json, aws-sigv4, aws-smithy-runtime, serde_json, hashbrown) | "
      "instructions: get -9%, list -15%, create -7%; binaries +214 KB (+3.4%) | no: test-connection and "
      "provision-bucket had 5-9 KB left under the zip limit |")
    w("")
    w("Where the rest goes (callgrind, a list of 20 at opt-level \"z\"): the two DynamoDB calls about half (the "
      "SDK's orchestrator, SigV4 signing, HTTP, and `BatchGetItem`'s response parsed into attribute maps, a third "
      "on its own); the records parsed into the domain's types (serde_dynamo, then validation) a fifth; the "
      "answer's JSON and the runtime's event handling most of the rest. Natively, on top: the kernel's loopback "
      "TCP (about a quarter of the CPU under perf) and malloc (about a tenth).")
    w("")
    w("Not measured yet (issue 19): where the functions' init goes beyond the floor's (no profile yet); "
      "numbers on AWS; Test Connection and provisioning against an IAM-enforcing moto (here no policy is "
      "evaluated, so their failure paths are not measured either); the routes outside issue 19's list "
      "(delete, `POST .../state-bucket`, the sweeper's scheduled run).")
    w("")
    return "\n".join(out)


def write_section(section):
    text = OUT.read_text() if OUT.exists() else "# Benchmarks\n"
    block = "%s\n%s\n%s" % (START, section, END)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    OUT.write_text(text)


if __name__ == "__main__":
    main()
