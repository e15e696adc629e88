//! `check-names`: the operator's consistency check of what the integrations table
//! derives from each record, its name guard and its visibility entries (see
//! `integrations_core::aws::dynamo::NameCheck`), and the backfill that brings a table
//! written before visibility entries to this layout. Uses the standard AWS SDK
//! configuration, so it runs against AWS or the local stack alike:
//!
//!   TABLE_NAME=<table> cargo run -p integrations-core --bin check-names [-- --repair]
//!   TABLE_NAME=<table> cargo run -p integrations-core --bin check-names -- --backfill [--after <pk>] [--page <n>]
//!
//! Prints the report as JSON; with `--repair`, writes missing guards and entries and
//! deletes orphan ones, then checks again. `--backfill` scans the table page by page
//! (progress on stderr, with the key to resume from), then checks. Exits 1 while
//! anything is inconsistent (contested names need a person: rename one of the two
//! records), so it can run from a schedule or CI.

use integrations_core::aws::dynamo::DynamoStore;

fn arg_after(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repair = std::env::args().any(|a| a == "--repair");
    let backfill = std::env::args().any(|a| a == "--backfill");
    let table = integrations_core::wiring::env("TABLE_NAME")?;
    // An operator's tool, run from a laptop: the SDK's full loader, so a profile
    // (`AWS_PROFILE`, SSO) works; the functions read the environment only.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(integrations_core::aws::http_client())
        .timeout_config(integrations_core::aws::service_timeouts())
        .load()
        .await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    if backfill {
        let page = match arg_after("--page") {
            Some(p) => p.parse::<i32>().map_err(|_| "--page takes a number")?,
            None => 200,
        };
        let mut after = arg_after("--after");
        let (mut scanned, mut indexed, mut legacy) = (0, 0, 0);
        let mut contested = Vec::new();
        loop {
            let report = store.backfill(after.as_deref(), page).await?;
            scanned += report.scanned;
            indexed += report.indexed;
            legacy += report.legacy_guards_removed;
            contested.extend(report.contested);
            eprintln!(
                "backfill: {scanned} items scanned, {indexed} records indexed, {legacy} old guards removed, {} contested; resume with --after {}",
                contested.len(),
                report.resume_after.as_deref().unwrap_or("(done)")
            );
            match report.resume_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        for id in &contested {
            eprintln!("backfill: {id} shares its owner's name with another record: rename one");
        }
    }
    let mut check = store.check_names().await?;
    if repair && !check.is_consistent() {
        let changed = store.repair_names(&check).await?;
        eprintln!("repaired {changed} item(s) or record(s)");
        check = store.check_names().await?;
    }
    println!("{}", serde_json::to_string_pretty(&check)?);
    if !check.is_consistent() {
        std::process::exit(1);
    }
    Ok(())
}
