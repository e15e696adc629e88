"""Runtime benchmark of the Lambda functions (issue 19), run by `bash scripts/bench.sh`.

Every function's release `bootstrap` runs as Lambda runs it: a stand-in Runtime API on
loopback (scripts/bench.py's `Runtime`) hands it events and takes its answers, while it
talks to the local AWS (DynamoDB Local, moto). Next to the four functions run the floor
(`hello-floor`, a hello-world `lambda_runtime` binary built with the same profile) and
a Python 3 + boto3 peer of create (scripts/peer/), under the same loop. Parts:
  1. cold start: exec -> first `GET .../invocation/next` (init), and exec -> the first
     response posted (init + first invocation), over fresh processes taking turns;
  2. warm cost per route: latency over one warm process, and the process's CPU time per
     invocation from /proc/<pid>/task/*/schedstat (ns, user + sys, all threads);
  3. peak RSS (VmHWM) per function;
  4. the Python peer next to create, with ratios;
  5. AWS requests and sequential rounds per operation, through a counting proxy.
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

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
import bench  # noqa: E402

REPO = bench.REPO
OUT = REPO / "BENCHMARKS.md"
START, END = "<!-- bench-runtime:start -->", "<!-- bench-runtime:end -->"
LOGS = REPO / ".local" / "bench-runtime"
FUNCTIONS = ["create-integration", "manage-integrations", "test-connection", "provision-bucket"]
WARMUP = 20


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

    def invoke(self, event):
        """One invocation: (latency ms, time the response was posted, status, body)."""
        self.rt.events.put(event)
        sent = time.perf_counter()
        done, path, payload = self.rt.answers.get(timeout=30)
        if not path.endswith("/response"):
            raise SystemExit("%s answered %s: %s" % (self.name, path, payload[:300]))
        answer = json.loads(payload)
        status = answer.get("statusCode")
        if status is None or status >= 400:
            raise SystemExit("%s returned %s: %s" % (self.name, status, payload[:500]))
        return (done - sent) * 1000, done, status, answer.get("body")

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


class CountingProxy:
    """Forwards HTTP to one upstream and records each request: (start, end, operation).
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
                op = self.headers.get("X-Amz-Target", "")
                op = op.split(".")[-1] if op else "%s %s" % (self.command, self.path.split("?")[0])
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
                    proxy.records.append((t0, t1, "%s:%s" % (service, op)))
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


def rounds(records):
    """Sequential rounds: groups of requests whose intervals overlap (chained)."""
    n, end = 0, None
    for start, stop, _ in sorted(records):
        if end is None or start > end:
            n += 1
            end = stop
        else:
            end = max(end, stop)
    return n


def load_event(name, ident=None, **changes):
    text = (REPO / "events" / name).read_text()
    if ident:
        text = text.replace(bench.SAMPLE_ID, ident)
    ev = json.loads(text)
    ev.update(changes)
    return ev


class Events:
    """Fresh events per invocation (creates need unique names)."""

    def __init__(self):
        self.n = 0
        self.ident = None

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


def main():
    moto_url, dynamodb_url, bin_dir = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    cold = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    warm = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    table, key, hmac = bench.bootstrap(moto_url, dynamodb_url)
    # The peer writes its own table: its items are not the functions' record format.
    peer_table = bench.bootstrap(moto_url, dynamodb_url)[0]
    env = bench.function_env(moto_url, dynamodb_url, table, key, hmac)
    peer_env = dict(env, TABLE_NAME=peer_table, PYTHONDONTWRITEBYTECODE="1")
    commands = {f: ([str(bin_dir / f)], env) for f in FUNCTIONS + ["hello-floor"]}
    commands["python-peer"] = ([sys.executable, str(REPO / "scripts" / "peer" / "runtime.py")], peer_env)
    ev = Events()

    def start(name, environment=None):
        cmd, e = commands[name]
        return Proc(name, cmd, environment or e)

    load_before = os.getloadavg()
    # Seed: 20 integrations of the caller, one of them read by get/history/state-bucket.
    p = start("create-integration")
    p.ready()
    for _ in range(20):
        body = json.loads(p.invoke(ev.create())[3])
        ev.ident = ev.ident or body["id"]
    p.stop()

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
    routes = [
        ("hello-floor", "hello (floor)", ev.setup_policies),
        ("manage-integrations", "get", ev.get),
        ("manage-integrations", "list, limit 20", ev.list_all),
        ("manage-integrations", "list, label, limit 20", ev.list_label),
        ("manage-integrations", "history, limit 20", ev.history),
        ("test-connection", "setup-policies (no AWS call)", ev.setup_policies),
        ("provision-bucket", "GET state-bucket", ev.bucket_get),
        ("create-integration", "create", ev.create),
        ("python-peer", "create (Python peer)", ev.create),
    ]
    warm_rows = []
    for name, route, make in routes:
        p = start(name)
        try:
            p.ready()
            for _ in range(WARMUP):
                p.invoke(make())
            events = [make() for _ in range(warm)]
            cpu0, wall0 = p.cpu_ns(), time.perf_counter()
            lat = [p.invoke(e)[0] for e in events]
            cpu1, wall1 = p.cpu_ns(), time.perf_counter()
            warm_rows.append((name, route, statistics.median(lat), pct(lat, 99),
                              (cpu1 - cpu0) / warm / 1e6, (wall1 - wall0) * 1000 / warm, p.hwm_mb()))
        finally:
            p.stop()
        print("warm %s: p50 %.2f ms, CPU %.3f ms" % (route, warm_rows[-1][2], warm_rows[-1][4]), file=sys.stderr)

    # 5. Round trips, through counting proxies (a separate pass: the proxy adds latency).
    moto_proxy, ddb_proxy = CountingProxy(moto_url, "kms"), CountingProxy(dynamodb_url, "dynamodb")
    proxied = {"AWS_ENDPOINT_URL": moto_proxy.url, "AWS_ENDPOINT_URL_DYNAMODB": ddb_proxy.url}
    trip_rows = []
    for name, route, make in routes[1:]:
        cmd, e = commands[name]
        p = Proc(name, cmd, dict(e, **proxied))
        try:
            p.ready()
            init_reqs = moto_proxy.between(p.start, p.rt.first_next) + ddb_proxy.between(p.start, p.rt.first_next)
            per_call = []
            for i in range(4):  # the first is cold (connections); the others are what a warm call does
                t0 = time.perf_counter()
                _, done, _, _ = p.invoke(make())
                recs = sorted(moto_proxy.between(t0, done) + ddb_proxy.between(t0, done))
                per_call.append(recs)
            warm_recs = per_call[-1]
            ops = " → ".join(r[2] for r in warm_recs) or "none"
            first_ops = " → ".join(r[2] for r in per_call[0]) or "none"
            if first_ops != ops:
                ops += " (first call: %s)" % first_ops
            trip_rows.append((route, len(init_reqs), len(per_call[0]), len(warm_recs), rounds(warm_recs), ops))
        finally:
            p.stop()
    moto_proxy.server.shutdown()
    ddb_proxy.server.shutdown()
    load_after = os.getloadavg()

    section = render(cold, warm, cold_rows, warm_rows, trip_rows, load_before, load_after)
    write_section(section)
    print(section)


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
    if sh("git", "status", "--porcelain", "--untracked-files=no"):
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
      "`lambda_runtime` function, same tokio runtime and profile); the peer is scripts/peer/ (the same create in "
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
      "more about the emulators than about AWS.")
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
    w("### 2. Warm cost per route (%d invocations on one warm process after %d warm-up)" % (warm, WARMUP))
    w("")
    w("*Latency*: the event handed over to the response posted, seen from the Runtime API stand-in (so it includes "
      "the stand-in's own hand-over, see the floor's row, and the emulators' work). *CPU*: the function process's "
      "CPU time (user + sys, all threads, from /proc/<pid>/task/*/schedstat) over the batch divided by the "
      "invocations. Target: CPU at most 1 ms per invocation for create, get and list. The owner has 20 "
      "integrations (half labelled `production`) when get and the listings run; get, history and the "
      "state-bucket read one of them.")
    w("")
    w("| function | route | p50 | p99 | CPU per invocation | target (CPU ≤ 1 ms) |")
    w("|---|---|---:|---:|---:|---|")
    targeted = {"get", "list, limit 20", "list, label, limit 20", "create"}
    for name, route, p50, p99, cpu, _, _ in warm_rows:
        target = verdict(cpu <= 1, "%.2f ms over" % (cpu - 1)) if route in targeted else "-"
        w("| %s | %s | %.2f ms | %.2f ms | %.3f ms | %s |" % (name, route, p50, p99, cpu, target))
    w("")

    # 3. Memory.
    w("### 3. Peak RSS (VmHWM) per function")
    w("")
    w("The highest VmHWM over the cold starts (after their first invocation) and the warm processes (after "
      "%d invocations). Target: at most 10 MB." % (warm + WARMUP))
    w("")
    w("| bootstrap | peak RSS, cold | peak RSS, warm | target (≤ 10 MB) |")
    w("|---|---:|---:|---|")
    for name in ["hello-floor"] + FUNCTIONS + ["python-peer"]:
        c = max(r[3] for r in cold_rows[name])
        wm = max(r[6] for r in warm_rows if r[0] == name)
        peak = max(c, wm)
        target = verdict(peak <= 10, "%.1f MB over" % (peak - 10)) if name in FUNCTIONS else "-"
        w("| %s | %.1f MB | %.1f MB | %s |" % (name, c, wm, target))
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
      "connections are new); the warm figures are the fourth invocation's.")
    w("")
    minimum = {"create": 2, "get": 1, "list, limit 20": 1, "list, label, limit 20": 1, "create (Python peer)": 2}
    w("| route | init requests | first call requests | warm requests | warm rounds | minimum | requests, in order |")
    w("|---|---:|---:|---:|---:|---|---|")
    for route, init_n, first_n, warm_n, rnds, ops in trip_rows:
        m = minimum.get(route)
        target = ("%d: %s" % (m, verdict(rnds <= m, "%d over" % (rnds - m)))) if m else "-"
        w("| %s | %d | %d | %d | %d | %s | %s |" % (route, init_n, first_n, warm_n, rnds, target, ops))
    w("")
    w("Above the minimum: a listing is a `Query` of the caller's partitions of `by_viewer` (which carries keys "
      "and labels only), then one `BatchGetItem` of the page's records, so 2 rounds; 1 would need the records "
      "themselves in the index. A label listing reads on within a partition while it has fewer than `limit + 1` "
      "matches (the filter runs after the read; half the owner's integrations carry the label here), one more "
      "round per further page of the partition (see the listing section above).")
    w("")
    w("Not measured yet (issue 19): warm cost and round trips of update, the unsaved test-connection with and "
      "without a role, the saved test, a provisioning run and a stream batch (they need IAM/STS/S3 on moto "
      "with a role to assume); where the functions' init goes beyond the floor's (no profile yet); numbers on "
      "AWS.")
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
