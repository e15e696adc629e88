//! `check-names`: the operator's consistency check of the integrations table's name
//! guards (see `integrations_core::aws::dynamo::NameCheck`). Uses the standard AWS SDK
//! configuration, so it runs against AWS or the local stack alike:
//!
//!   TABLE_NAME=<table> cargo run -p ik-shared --bin check-names [-- --repair]
//!
//! Prints the report as JSON; with `--repair`, writes missing guards and deletes orphan
//! ones, then checks again. Exits 1 while anything is inconsistent (contested names need
//! a person: rename one of the two records), so it can run from a schedule or CI.

use integrations_core::aws::dynamo::DynamoStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repair = std::env::args().any(|a| a == "--repair");
    let table = integrations_core::wiring::env("TABLE_NAME")?;
    let sdk = integrations_core::aws::load_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &table);
    let mut check = store.check_names().await?;
    if repair && !check.is_consistent() {
        let changed = store.repair_names(&check).await?;
        eprintln!("repaired {changed} guard(s)");
        check = store.check_names().await?;
    }
    println!("{}", serde_json::to_string_pretty(&check)?);
    if !check.is_consistent() {
        std::process::exit(1);
    }
    Ok(())
}
