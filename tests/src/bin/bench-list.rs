//! `bench-list`: the listing benchmark of issue 18 (tenant-scoped storage). A tenant with
//! 10 integrations lists them (all, and by label) while the table holds 10 and then
//! 10,000 integrations of other owners; the latency of the two phases should be within
//! 1.5x, and the index entries a page reads (DynamoDB's `ScannedCount`, the store's
//! `entries_read`) at most `limit` + the partitions the caller may see. An admin's
//! listing is measured too, for contrast. Writes its section of BENCHMARKS.md.
//!
//! A benchmark, not a test: a missed target is reported, not an error; it exits non-zero
//! only when something fails (AWS calls, a wrong page). Run it with
//! `scripts/bench-list.sh`, which starts DynamoDB Local and moto on free ports; it reads
//! the endpoints from the SDK's environment (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`). `BENCH_FOREIGN` (default 10000), `BENCH_REQUESTS`
//! (default 200) and `BENCH_OUTPUT` (default BENCHMARKS.md at the repository root) change
//! the run; the section records what was used.
//!
//! Every integration is created through the use case (`Integrations::create`: KMS
//! encryption on moto, then one TransactWriteItems of the record, its name guard, audit
//! event and visibility entries), so the table holds what the service writes.
//!
//! A second table with the same tenant and 10 foreign integrations is measured in turn
//! with the first in both phases, and this process's own CPU time per request is
//! recorded: the emulator's state, other load on the machine and the (debug) client's
//! CPU time are the same for both tables, so their difference is what the table's size
//! adds.

use integrations_core::app::integrations::{Created, Integrations};
use integrations_core::aws::dynamo::{DynamoStore, ADMIN_SHARDS};
use integrations_core::domain::{Caller, GroupName, ListPosition, Visibility};
use integrations_core::ports::{IntegrationListing, ListQuery, ViewQuery};
use local_harness::bootstrap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TENANT: &str = "bench-tenant";
const TENANT_GROUP: &str = "bench-team";
const TENANT_INTEGRATIONS: usize = 10;
const FOREIGN_SMALL: usize = 10;
const FOREIGN_OWNERS: usize = 50;
/// Creates in flight while filling: DynamoDB Local on two cores is the bottleneck, and
/// more only queues there.
const FILL_CONCURRENCY: usize = 8;
/// Warm-up rounds (every row once) before the timed ones: more before the first phase,
/// the second comes after thousands of writes have warmed the emulator.
const WARM_UP_FIRST: usize = 100;
const WARM_UP: usize = 20;
const TARGET_RATIO: f64 = 1.5;
const LABEL: &str = "prod";
const START: &str = "<!-- bench-list:start -->";
const END: &str = "<!-- bench-list:end -->";

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Tenant,
    Admin,
}

/// One measured request shape.
struct Case {
    title: &'static str,
    who: Who,
    label: Option<&'static str>,
    limit: usize,
    /// The second page, through the first page's token (the token is opened each time).
    second_page: bool,
}

const CASES: &[Case] = &[
    Case {
        title: "list, limit 5",
        who: Who::Tenant,
        label: None,
        limit: 5,
        second_page: false,
    },
    Case {
        title: "list, limit 50",
        who: Who::Tenant,
        label: None,
        limit: 50,
        second_page: false,
    },
    Case {
        title: "list, limit 5, page 2 (token)",
        who: Who::Tenant,
        label: None,
        limit: 5,
        second_page: true,
    },
    Case {
        title: "label=prod, limit 5",
        who: Who::Tenant,
        label: Some(LABEL),
        limit: 5,
        second_page: false,
    },
    Case {
        title: "label=prod, limit 50",
        who: Who::Tenant,
        label: Some(LABEL),
        limit: 50,
        second_page: false,
    },
    Case {
        title: "admin list, limit 5",
        who: Who::Admin,
        label: None,
        limit: 5,
        second_page: false,
    },
    Case {
        title: "admin list, limit 50",
        who: Who::Admin,
        label: None,
        limit: 50,
        second_page: false,
    },
];

/// One request's wall time and this process's CPU time in it.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
}

/// One case on one table in one phase.
#[derive(Clone)]
struct Measured {
    p50: Duration,
    p90: Duration,
    /// Mean CPU time of this process (all its threads) per request: the client's share,
    /// the same whatever the table holds.
    cpu_mean: Option<Duration>,
    entries_read: usize,
    /// A tenant's entries read per partition: its own (`u#`), its group's (`g#`).
    split: Option<(usize, usize)>,
    items: usize,
}

/// A table with the use case and store over it, and how many foreign integrations it
/// holds.
struct Table {
    svc: Integrations,
    store: DynamoStore,
    foreign: usize,
}

/// One phase: per table measured, one result per case.
struct Phase {
    results: Vec<Vec<Measured>>,
    load_before: String,
    load_after: String,
    /// Mean wall time of a request, and this process's own CPU time per request (the
    /// SDK, the use case, the token; debug build): how much of a request the build
    /// profile could change at all.
    wall_per_request: Duration,
    cpu_per_request: Option<Duration>,
}

struct Bench {
    tenant: Caller,
    admin: Caller,
    requests: usize,
}

fn env_usize(name: &str, default: usize) -> Result<usize, BoxError> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {v:?}").into()),
    }
}

fn form(name: &str, groups: &[String], labels: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "aws_account_id": "123456789012",
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "shared_with": groups,
        "labels": labels,
    })
}

/// The tenant's n-th integration: `prod` on the even ones, shared with its group for
/// the first half (so both partitions hold some of each label).
fn tenant_form(n: usize) -> serde_json::Value {
    let groups = if n < TENANT_INTEGRATIONS / 2 {
        vec![TENANT_GROUP.to_owned()]
    } else {
        vec![]
    };
    let labels: &[&str] = if n.is_multiple_of(2) {
        &[LABEL]
    } else {
        &["dev"]
    };
    form(&format!("tenant-app-{n:02}"), &groups, labels)
}

/// The n-th foreign integration: 50 owners; a third shared with one of seven groups the
/// tenant is not in, a third with a group whose name starts like the tenant's; three
/// quarters labelled `prod` like the tenant's.
fn foreign(n: usize) -> (Caller, serde_json::Value) {
    let owner = Caller::user(format!("foreign-owner-{:02}", n % FOREIGN_OWNERS), vec![]);
    let groups = match n % 3 {
        0 => vec![format!("foreign-team-{}", n % 7)],
        1 => vec![format!("{TENANT_GROUP}-other")],
        _ => vec![],
    };
    let labels: &[&str] = if n % 4 == 3 {
        &["staging"]
    } else {
        &[LABEL, "shared"]
    };
    (owner, form(&format!("svc-{n:05}"), &groups, labels))
}

async fn create(svc: &Integrations, who: &Caller, v: serde_json::Value) -> Result<(), BoxError> {
    let new = integrations_core::http::input::parse_new(v.to_string().as_bytes())?;
    match svc.create(who, new, None).await? {
        Created::New(_) => Ok(()),
        Created::Replayed(_) => Err("a create without an idempotency key was replayed".into()),
    }
}

/// Creates foreign integrations `from..to`, `FILL_CONCURRENCY` at a time, with progress.
async fn fill(svc: &Integrations, from: usize, to: usize) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(from));
    let done = Arc::new(AtomicUsize::new(0));
    let total = to.saturating_sub(from);
    // Worker tasks over a shared counter (futures' buffer_unordered is only a
    // dev-dependency of this crate, so a binary cannot use it).
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..FILL_CONCURRENCY {
        let (svc, next, done) = (svc.clone(), next.clone(), done.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= to {
                    return Ok::<(), BoxError>(());
                }
                let (owner, v) = foreign(n);
                create(&svc, &owner, v).await?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(500) || d == total {
                    let s = started.elapsed().as_secs_f64();
                    println!(
                        "  created {d}/{total} foreign integrations in {s:.1} s ({:.0}/s)",
                        d as f64 / s.max(1e-9)
                    );
                }
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// This process's CPU time so far, all threads, to the nanosecond (the kernel's own
/// account; /proc's is in 10 ms ticks, too coarse for one request). std has no binding
/// and this crate no libc dependency, so the one libc call is declared here.
/// CPU time of this process so far: the sum over its threads of the kernel's
/// nanosecond run-time counter (`/proc/self/task/*/schedstat`, first field). Read from
/// /proc rather than through a libc call, so the harness needs no `unsafe`.
fn own_cpu() -> Option<Duration> {
    let mut total: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

impl Bench {
    fn caller(&self, who: Who) -> &Caller {
        match who {
            Who::Tenant => &self.tenant,
            Who::Admin => &self.admin,
        }
    }

    /// How many items the case's page must hold with `foreign` integrations of others.
    fn expected_items(&self, c: &Case, foreign: usize) -> usize {
        let visible = match (c.who, c.label) {
            (Who::Tenant, None) => TENANT_INTEGRATIONS,
            (Who::Tenant, Some(_)) => TENANT_INTEGRATIONS.div_ceil(2),
            (Who::Admin, None) => TENANT_INTEGRATIONS + foreign,
            (Who::Admin, Some(_)) => TENANT_INTEGRATIONS.div_ceil(2) + foreign,
        };
        let skipped = if c.second_page { c.limit } else { 0 };
        visible.saturating_sub(skipped).min(c.limit)
    }

    fn partitions(&self, who: Who) -> usize {
        match who {
            Who::Tenant => 1 + self.tenant.groups.len(),
            Who::Admin => ADMIN_SHARDS as usize,
        }
    }

    /// The token a case's requests carry (the first page's, for page 2), and the store
    /// position it stands for.
    async fn start_of(
        &self,
        t: &Table,
        c: &Case,
    ) -> Result<(Option<String>, Option<ListPosition>), BoxError> {
        if !c.second_page {
            return Ok((None, None));
        }
        let page = t
            .svc
            .list(
                self.caller(c.who),
                ListQuery {
                    filter: Default::default(),
                    label: c.label.map(str::to_owned),
                    limit: c.limit,
                    next_token: None,
                },
            )
            .await?;
        let token = page
            .next_token
            .ok_or_else(|| format!("{}: the first page has no token", c.title))?;
        let last = page
            .items
            .last()
            .map(ListPosition::of)
            .ok_or_else(|| format!("{}: the first page is empty", c.title))?;
        Ok((Some(token), Some(last)))
    }

    /// Entries the store reads for the case's page, as a caller who sees `visible`.
    async fn entries_read(
        &self,
        t: &Table,
        c: &Case,
        visible: Visibility,
        after: Option<ListPosition>,
    ) -> Result<usize, BoxError> {
        let page = t
            .store
            .list(&ViewQuery {
                filter: Default::default(),
                now: integrations_core::domain::Timestamp::now(),
                visible_to: visible,
                label: c.label.map(str::to_owned),
                limit: c.limit,
                after,
            })
            .await?;
        Ok(page.entries_read)
    }

    /// The case's entries read, and for the tenant the same per partition: its own
    /// partition alone, then its group's beside an owner that has nothing.
    async fn reads(
        &self,
        t: &Table,
        c: &Case,
        after: Option<ListPosition>,
    ) -> Result<(usize, Option<(usize, usize)>), BoxError> {
        let who = self.caller(c.who);
        let total = self
            .entries_read(t, c, Visibility::of(who), after.clone())
            .await?;
        if c.who != Who::Tenant {
            return Ok((total, None));
        }
        let own = Visibility::OwnedOrShared {
            owner: TENANT.into(),
            groups: vec![],
        };
        let group = Visibility::OwnedOrShared {
            owner: "bench-owns-nothing".into(),
            groups: who.groups.clone(),
        };
        let u = self.entries_read(t, c, own, after.clone()).await?;
        let g = self.entries_read(t, c, group, after).await?;
        Ok((total, Some((u, g))))
    }

    /// One request through the use case, checked: the page's size, its label, and that
    /// a tenant sees only its own integrations (no foreign one is shared with its group).
    async fn request(
        &self,
        t: &Table,
        c: &Case,
        token: &Option<String>,
        expected: usize,
    ) -> Result<Sample, BoxError> {
        let cpu_before = own_cpu();
        let started = Instant::now();
        let page = t
            .svc
            .list(
                self.caller(c.who),
                ListQuery {
                    filter: Default::default(),
                    label: c.label.map(str::to_owned),
                    limit: c.limit,
                    next_token: token.clone(),
                },
            )
            .await?;
        let took = Sample {
            wall: started.elapsed(),
            cpu: own_cpu()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
        };
        if page.items.len() != expected {
            return Err(format!(
                "{}: {} items, expected {expected}",
                c.title,
                page.items.len()
            )
            .into());
        }
        if c.who == Who::Tenant && page.items.iter().any(|i| i.created_by != TENANT) {
            return Err(format!(
                "{}: the tenant was shown another owner's integration",
                c.title
            )
            .into());
        }
        if let Some(l) = c.label {
            if !page
                .items
                .iter()
                .all(|i| i.labels.iter().any(|x| x.as_str() == l))
            {
                return Err(format!("{}: an item without the label {l}", c.title).into());
            }
        }
        Ok(took)
    }

    /// Every case on every table: entries read (from the store, same query), then
    /// `rounds` of warm-up, then `requests` timed requests per case and table. Cases and
    /// tables take turns, so a burst of load elsewhere on the machine (or the emulator's
    /// JIT) falls on all of them alike.
    async fn measure(&self, tables: &[&Table], warm_up: usize) -> Result<Phase, BoxError> {
        let load_before = loadavg();
        // Per table, per case: (token, expected items, entries read, split).
        let mut setup = Vec::new();
        for t in tables {
            let mut per_case = Vec::new();
            for c in CASES {
                let (token, after) = self.start_of(t, c).await?;
                let (read, split) = self.reads(t, c, after).await?;
                per_case.push((token, self.expected_items(c, t.foreign), read, split));
            }
            setup.push(per_case);
        }
        let mut samples = vec![vec![Vec::with_capacity(self.requests); CASES.len()]; tables.len()];
        let (cpu_before, wall_started) = (own_cpu(), Instant::now());
        for round in 0..warm_up + self.requests {
            for (ci, c) in CASES.iter().enumerate() {
                for (ti, t) in tables.iter().enumerate() {
                    let (token, expected, _, _) = &setup[ti][ci];
                    let took = self.request(t, c, token, *expected).await?;
                    if round >= warm_up {
                        samples[ti][ci].push(took);
                    }
                }
            }
        }
        let count = ((warm_up + self.requests) * CASES.len() * tables.len()).max(1) as u32;
        let wall_per_request = wall_started.elapsed() / count;
        let cpu_per_request = own_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after.saturating_sub(before) / count);
        let results = samples
            .into_iter()
            .zip(setup)
            .map(|(per_case, setup)| {
                per_case
                    .into_iter()
                    .zip(setup)
                    .map(|(s, (_, items, entries_read, split))| {
                        let mut wall: Vec<Duration> = s.iter().map(|x| x.wall).collect();
                        wall.sort();
                        let cpu: Option<Vec<Duration>> = s.iter().map(|x| x.cpu).collect();
                        let cpu_mean = cpu.map(|c| {
                            c.iter().sum::<Duration>() / u32::try_from(c.len()).unwrap_or(u32::MAX)
                        });
                        Measured {
                            p50: percentile(&wall, 0.5),
                            p90: percentile(&wall, 0.9),
                            cpu_mean,
                            entries_read,
                            split,
                            items,
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Phase {
            results,
            load_before,
            load_after: loadavg(),
            wall_per_request,
            cpu_per_request,
        })
    }
}

/// 10000 as "10,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn print_phase(name: &str, p: &Phase, tables: &[&str]) {
    println!(
        "{name} (load average {} -> {}; per request {} ms, this process's CPU {} ms)",
        p.load_before,
        p.load_after,
        ms(p.wall_per_request),
        p.cpu_per_request.map_or("?".into(), ms)
    );
    for (results, table) in p.results.iter().zip(tables) {
        println!("  {table}:");
        for (c, m) in CASES.iter().zip(results) {
            let split = m
                .split
                .map(|(u, g)| format!(" (u {u} + g {g})"))
                .unwrap_or_default();
            println!(
                "    {:<30} p50 {:>6} p90 {:>6} ms (this process's CPU {:>5} ms)  items {:>2}  entries read {}{split}",
                c.title,
                ms(m.p50),
                ms(m.p90),
                opt_ms(m.cpu_mean),
                m.items,
                m.entries_read
            );
        }
    }
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "?".into(), ms)
}

/// `b - a` in milliseconds, with its sign.
fn diff_ms(b: Duration, a: Duration) -> String {
    format!("{:+.2}", (b.as_secs_f64() - a.as_secs_f64()) * 1000.0)
}

fn ratio(b: Duration, a: Duration) -> f64 {
    b.as_secs_f64() / a.as_secs_f64().max(1e-9)
}

/// One row's verdict: the latency ratio of the phases (p50) and the read bound in both.
struct Verdict {
    ratio: f64,
    bound: usize,
    ratio_ok: bool,
    reads_ok: bool,
}

fn verdict(c: &Case, partitions: usize, a: &Measured, b: &Measured) -> Verdict {
    let r = ratio(b.p50, a.p50);
    let bound = c.limit + partitions;
    Verdict {
        ratio: r,
        bound,
        ratio_ok: r <= TARGET_RATIO,
        reads_ok: a.entries_read <= bound && b.entries_read <= bound,
    }
}

fn result_text(c: &Case, v: &Verdict) -> String {
    let mut misses = Vec::new();
    if !v.ratio_ok {
        misses.push("ratio");
    }
    if !v.reads_ok {
        misses.push("reads");
    }
    let text: String = if misses.is_empty() {
        "PASS".to_owned()
    } else {
        format!("FAIL ({})", misses.join(", "))
    };
    match (c.who, misses.is_empty()) {
        (Who::Tenant, _) => text,
        (Who::Admin, true) => "contrast (no target): within both".into(),
        (Who::Admin, false) => format!("contrast (no target): over on {}", misses.join(", ")),
    }
}

fn command(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn machine() -> String {
    let arch = command("uname", &["-m"]).unwrap_or_else(|| std::env::consts::ARCH.into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "CPU model unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{arch}, {cpu}, {cores} cores")
}

fn commit() -> String {
    match command("git", &["rev-parse", "--short", "HEAD"]) {
        None => "unknown".into(),
        // --no-optional-locks: a read that never takes the index lock of a working tree
        // others may be using.
        Some(c) => match command(
            "git",
            &[
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
            ],
        ) {
            Some(_) => format!("{c} with uncommitted changes"),
            None => c,
        },
    }
}

struct Run {
    date: String,
    fill_small: Duration,
    fill_large: Duration,
    requests: usize,
    foreign_large: usize,
    a: Phase,
    b: Phase,
    partitions: Vec<usize>,
}

/// Index of the tables in a phase's results.
const MAIN: usize = 0;
const CONTROL: usize = 1;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

fn section(run: &Run) -> String {
    let dynamodb_local = env_or("BENCH_DYNAMODB_LOCAL_VERSION", "version unknown");
    let moto = env_or("BENCH_MOTO_VERSION", "version unknown");
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let added_n = run.foreign_large.saturating_sub(FOREIGN_SMALL);
    let (fa, fb, added) = (
        thousands(FOREIGN_SMALL),
        thousands(run.foreign_large),
        thousands(added_n),
    );
    let mut s = String::new();
    let _ = writeln!(s, "{START}");
    let _ = writeln!(
        s,
        "## Listing with tenant-scoped storage (issue 18)\n\n\
         `bash scripts/bench-list.sh` (tests/src/bin/bench-list.rs). A tenant \
         (`{TENANT}`, in group `{TENANT_GROUP}`: 2 partitions) owns {TENANT_INTEGRATIONS} \
         integrations, 5 labelled `{LABEL}`, 5 shared with its group. The table also holds \
         F integrations of {FOREIGN_OWNERS} other owners (three quarters labelled \
         `{LABEL}`, two thirds shared with groups the tenant is not in). Every request goes \
         through the use case `Integrations::list` (page tokens sealed and, for page 2, \
         opened): first with F = {fa}, then, after adding {added}, with F = {fb}; \
         {} timed requests per row and phase after {WARM_UP_FIRST} (first phase) and \
         {WARM_UP} (second) warm-up rounds, the rows taking turns. A second table holding the same tenant and F = {fa} is \
         measured in turn with the first in both phases (*alongside*, below).\n\n\
         *Entries read* is the store's `entries_read` for the same query, measured once \
         per phase: the sum of DynamoDB's `ScannedCount` over the page's `Query` calls on \
         `by_viewer` (split for the tenant into its own partition `u` and its group's `g`); \
         the page's one BatchGetItem of at most `limit` records comes on top. \
         Bound = `limit` + the partitions the caller may see.\n",
        run.requests
    );
    let _ = writeln!(
        s,
        "- run: {}, commit {}\n- machine: {}\n- DynamoDB Local {dynamodb_local} (in \
         memory) and moto {moto}, on loopback; {build} build of the harness\n- filling: \
         the tenant's {TENANT_INTEGRATIONS} and F = {fa} in {:.1} s; the other {added} in \
         {:.1} s ({:.0} per second, {FILL_CONCURRENCY} at a time), each through \
         `Integrations::create` (KMS Encrypt on moto, one TransactWriteItems of the \
         record, its name guard, audit event and visibility entries)\n- load average \
         (1, 5, 15 min) while measuring: F = {fa}: {} -> {}; F = {fb}: {} -> {}\n\
         - this process's own CPU time per request (the SDK, the use case, the page \
         token; {build} build), against a request's mean wall time: F = {fa}: {} of {} \
         ms; F = {fb}: {} of {} ms (mean over all rows; the client's threads and DynamoDB \
         Local share the cores).\n",
        run.date,
        commit(),
        machine(),
        run.fill_small.as_secs_f64(),
        run.fill_large.as_secs_f64(),
        added_n as f64 / run.fill_large.as_secs_f64().max(1e-9),
        run.a.load_before,
        run.a.load_after,
        run.b.load_before,
        run.b.load_after,
        run.a.cpu_per_request.map_or("?".into(), ms),
        ms(run.a.wall_per_request),
        run.b.cpu_per_request.map_or("?".into(), ms),
        ms(run.b.wall_per_request),
    );
    let _ = writeln!(
        s,
        "| query | items | F={fa} p50 / p90 ms | F={fb} p50 / p90 ms | ratio p50 \
         | entries read F={fa} / F={fb} | bound | result |\n\
         |---|---:|---:|---:|---:|---:|---:|---|"
    );
    let mut passed = 0;
    let mut targeted = 0;
    let mut ratio_ok = 0;
    let mut machine_rows = String::new();
    for (i, c) in CASES.iter().enumerate() {
        let (a, b) = (&run.a.results[MAIN][i], &run.b.results[MAIN][i]);
        let beside = &run.b.results[CONTROL][i];
        let v = verdict(c, run.partitions[i], a, b);
        if c.who == Who::Tenant {
            targeted += 1;
            passed += usize::from(v.ratio_ok && v.reads_ok);
            ratio_ok += usize::from(v.ratio_ok);
        }
        let _ = writeln!(
            machine_rows,
            "| {} | {} | {} ({:.2}x) | {} / {} |",
            c.title,
            ms(beside.p50),
            diff_ms(b.p50, beside.p50),
            ratio(b.p50, beside.p50),
            opt_ms(a.cpu_mean),
            opt_ms(b.cpu_mean),
        );
        let items = if a.items == b.items {
            a.items.to_string()
        } else {
            format!("{} / {}", a.items, b.items)
        };
        let reads = |m: &Measured| match m.split {
            Some((u, g)) => format!("{} ({u}+{g})", m.entries_read),
            None => m.entries_read.to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {items} | {} / {} | {} / {} | {:.2}x | {} / {} | {} ({} + {}) | {} |",
            c.title,
            ms(a.p50),
            ms(a.p90),
            ms(b.p50),
            ms(b.p90),
            v.ratio,
            reads(a),
            reads(b),
            v.bound,
            c.limit,
            run.partitions[i],
            result_text(c, &v),
        );
    }
    let _ = writeln!(
        s,
        "\nTenant rows: {ratio_ok} of {targeted} within {TARGET_RATIO}x (p50, F = {fb} \
         against F = {fa}); {passed} of {targeted} also within the read bound in both \
         phases.\n\n\
         What the table's size adds, apart from the machine. *Alongside*: the second \
         table (F = {fa}) measured in turn with the first during the F = {fb} phase, so \
         both see the same emulator state and the same load; the difference of the \
         medians (and their ratio) is what F = {fb} adds. *Client CPU*: this process's own \
         CPU time per request (mean over the row's requests, all threads: the SDK, the use \
         case, the page token, in a {build} build). It is the same whatever the table \
         holds, so it dilutes a ratio of latencies (and in a {build} build it is much of a \
         request); the difference in milliseconds is free of it.\n\n\
         | query | alongside F={fa} p50 ms | F={fb} minus alongside, p50 ms (ratio) \
         | client CPU ms F={fa} / F={fb} |\n\
         |---|---:|---:|---:|\n\
         {machine_rows}\n\
         DynamoDB Local on loopback is not AWS: its absolute latencies (a Java emulator on \
         SQLite, sharing this machine's cores with the benchmark) say nothing about \
         DynamoDB's. What the benchmark shows is the ratio between the \
         phases and the entries read, which come from the layout, not the emulator: a \
         tenant's listing queries only its own partitions (`u#<owner>`, `g#<group>`), \
         and reads the same entries however many other integrations the table holds. \
         The harness is a {build} build: its client CPU time (above) is part of every \
         latency here, and a release build would shorten the requests by most of it; \
         neither the entries read nor the difference to the table alongside depend on \
         it."
    );
    if passed < targeted {
        let _ = writeln!(
            s,
            "\nWhere the entries over the bound come from (the store's code as measured, \
             shared/src/aws/dynamo/query.rs, and the `u+g` split above): each partition's \
             `Query` asks for `limit + 1` entries (so the merge knows whether more remain), \
             so a page may read `partitions x (limit + 1)` rather than `limit + \
             partitions`; the tenant's shared integrations are in both its partitions \
             (read twice, kept once). A label listing reads past entries without the label \
             until a partition gives `limit + 1` matches or ends (the filter runs after \
             the read, and `ScannedCount` counts what was read). The admins' listing reads \
             all {ADMIN_SHARDS} shards, up to `limit + 1` each, so it grows with the table \
             until every shard holds more than a page."
        );
    }
    let _ = writeln!(s, "{END}");
    s
}

/// `text` with the section between the markers replaced by `section` (appended when
/// there is none), everything else kept.
fn splice(text: &str, section: &str) -> String {
    if let (Some(a), Some(b)) = (text.find(START), text.find(END)) {
        if a < b {
            let after = &text[b + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            return format!("{}{section}{after}", &text[..a]);
        }
    }
    if text.trim().is_empty() {
        return format!("# Benchmarks\n\n{section}");
    }
    let sep = if text.ends_with("\n\n") {
        ""
    } else if text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{text}{sep}{section}")
}

/// A fresh table and keys (named by `name` and the time, so a run against emulators
/// that ran before starts from an empty table too), with the use case over them.
async fn table(sdk: &aws_config::SdkConfig, name: &str) -> Result<Table, BoxError> {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let stack = bootstrap::ensure(
        sdk,
        &format!("{name}-{suffix}"),
        &format!("alias/{name}-{suffix}"),
    )
    .await?;
    let functions = local_harness::functions(sdk, sdk, &stack)?;
    println!("table {} (fresh)", stack.table);
    Ok(Table {
        svc: functions.integrations.clone(),
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &stack.table),
        foreign: 0,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let foreign_large = env_usize("BENCH_FOREIGN", 10_000)?.max(FOREIGN_SMALL);
    let requests = env_usize("BENCH_REQUESTS", 200)?.max(1);
    let output = env_or(
        "BENCH_OUTPUT",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../BENCHMARKS.md"),
    );

    let sdk = integrations_core::aws::load_config();
    let bench = Bench {
        tenant: Caller::user(TENANT, vec![GroupName::parse(TENANT_GROUP)?]),
        admin: Caller::admin("bench-admin", vec![]),
        requests,
    };
    let date = integrations_core::domain::Timestamp::now()
        .as_str()
        .to_owned();
    let mut main_table = table(&sdk, "bench-list").await?;
    let mut control = table(&sdk, "bench-list-alongside").await?;

    let mut fill_small = Duration::ZERO;
    for t in [&mut main_table, &mut control] {
        let started = Instant::now();
        for n in 0..TENANT_INTEGRATIONS {
            create(&t.svc, &bench.tenant, tenant_form(n)).await?;
        }
        fill(&t.svc, 0, FOREIGN_SMALL).await?;
        t.foreign = FOREIGN_SMALL;
        // The first table's: the one the report is about.
        if fill_small.is_zero() {
            fill_small = started.elapsed();
        }
    }
    let names = ["the table", "alongside (F = 10)"];

    // DynamoDB Local is a JVM: its first requests run slower while the JIT compiles.
    // More warm-up rounds before the first phase than before the second (which comes
    // after thousands of writes).
    println!("measuring with F = {FOREIGN_SMALL}");
    let a = bench
        .measure(&[&main_table, &control], WARM_UP_FIRST)
        .await?;
    print_phase(&format!("F = {FOREIGN_SMALL}"), &a, &names);

    println!("filling to F = {foreign_large}");
    let fill_large = fill(&main_table.svc, FOREIGN_SMALL, foreign_large).await?;
    main_table.foreign = foreign_large;
    println!(
        "filled {} foreign integrations in {:.1} s",
        foreign_large - FOREIGN_SMALL,
        fill_large.as_secs_f64()
    );
    println!("measuring with F = {foreign_large}");
    let b = bench.measure(&[&main_table, &control], WARM_UP).await?;
    print_phase(&format!("F = {foreign_large}"), &b, &names);

    let run = Run {
        date,
        fill_small,
        fill_large,
        requests,
        foreign_large,
        partitions: CASES.iter().map(|c| bench.partitions(c.who)).collect(),
        a,
        b,
    };
    println!(
        "\nsummary (targets: p50 ratio <= {TARGET_RATIO}x; entries read <= limit + partitions):"
    );
    for (i, c) in CASES.iter().enumerate() {
        let (a, b) = (&run.a.results[MAIN][i], &run.b.results[MAIN][i]);
        let v = verdict(c, run.partitions[i], a, b);
        println!(
            "  {:<32} ratio {:.2}x (alongside {:.2}x)  entries read {} / {} (bound {})  {}",
            c.title,
            v.ratio,
            ratio(b.p50, run.b.results[CONTROL][i].p50),
            a.entries_read,
            b.entries_read,
            v.bound,
            result_text(c, &v)
        );
    }
    let existing = match std::fs::read_to_string(&output) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {output}: {e}").into()),
    };
    std::fs::write(&output, splice(&existing, &section(&run)))
        .map_err(|e| format!("writing {output}: {e}"))?;
    println!("wrote the bench-list section of {output}");
    Ok(())
}
