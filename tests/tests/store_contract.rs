//! The store contract on DynamoDB Local (the same cases the unit tests run on the
//! in-memory fake), the visibility layout's read bound, and the migration of a table
//! written by the layout before it (global names, no visibility entries).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::TestEnv;
use integrations_core::aws::dynamo::DynamoStore;
use integrations_core::domain::{Caller, GroupName, Visibility};
use integrations_core::ports::{IntegrationListing, ListQuery, ViewQuery};
use std::collections::HashMap;
use std::sync::Arc;

fn store(env: &TestEnv) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&env.sdk), &env.stack.table)
}

#[tokio::test]
async fn the_dynamodb_store_keeps_the_store_contract() {
    let env = TestEnv::new().await;
    integrations_core::app::fakes::contract::run(Arc::new(store(&env)), "ddb").await;
    // Everything the contract wrote left the table consistent.
    let check = store(&env).check_names().await.unwrap();
    assert!(check.is_consistent(), "{check:#?}");
    // The contract's delegation record (issue 21) is stored with no key attribute at all,
    // and every access-key record (also the one switched to delegation and back) with both.
    let items = env.raw_items().await;
    let of_kind = |kind: &str| -> Vec<&HashMap<String, AttributeValue>> {
        items
            .iter()
            .filter(|i| {
                i.get("pk")
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|pk| pk.starts_with("I#"))
            })
            .filter(|i| {
                i.get("auth")
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    == Some(kind)
            })
            .collect()
    };
    let delegated = of_kind("role_delegation");
    assert_eq!(delegated.len(), 1, "{delegated:?}");
    for attr in ["aws_access_key_id", "secret_ciphertext"] {
        assert!(
            !delegated[0].contains_key(attr),
            "{attr} stored: {:?}",
            delegated[0]
        );
        for keyed in of_kind("access_keys") {
            assert!(keyed.contains_key(attr), "{attr} missing: {keyed:?}");
        }
    }
    assert!(
        delegated[0].contains_key("aws_external_id"),
        "{:?}",
        delegated[0]
    );
}

fn form(name: &str, groups: &[&str], labels: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "aws_account_id": "123456789012",
        "aws_access_key_id": common::KEY_ID,
        "aws_secret_access_key": common::SECRET,
        "shared_with": groups,
        "labels": labels,
    })
}

/// A listing reads the caller's own partitions only: with 300 integrations of another
/// owner in the table, a tenant's page reads at most `limit + 1` entries per partition
/// it may see, and none of the other owner's.
#[tokio::test]
async fn a_listing_reads_only_the_callers_partitions() {
    let env = TestEnv::new().await;
    let svc = &env.functions.integrations;
    let other = Caller::user("bulk-owner", vec![]);
    let mine = Caller::user("tenant", vec![GroupName::parse("tenant-team").unwrap()]);
    let new = |v: serde_json::Value| {
        integrations_core::http::input::parse_new(v.to_string().as_bytes()).unwrap()
    };
    use futures::StreamExt as _;
    // Eight at a time: DynamoDB Local on two cores is the bottleneck, not the service.
    let created: Vec<_> = futures::stream::iter(0..300)
        .map(|n| {
            svc.create(
                &other,
                new(form(&format!("bulk-{n:03}"), &[], &["prod"])),
                None,
            )
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in created {
        r.unwrap();
    }
    for n in 0..6 {
        svc.create(&mine, new(form(&format!("mine-{n}"), &[], &["prod"])), None)
            .await
            .unwrap();
    }
    let s = store(&env);
    for (label, limit) in [(None, 2), (None, 10), (Some("prod"), 2), (Some("prod"), 10)] {
        let page = s
            .list(&ViewQuery {
                visible_to: Visibility::of(&mine),
                label: label.map(str::to_owned),
                limit,
                after: None,
                filter: Default::default(),
                now: integrations_core::domain::Timestamp::now(),
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), limit.min(6));
        assert!(page.items.iter().all(|i| i.created_by == "tenant"));
        // Two partitions (the tenant's and its group's, empty): at most limit + 1 from
        // the first, the empty one reads nothing. A label listing's first page is
        // 4 x (limit + 1) entries: here all 6 of the tenant's, none of the other 300.
        let bound = if label.is_some() { 6 } else { limit + 1 };
        assert!(
            page.entries_read <= bound,
            "{label:?}/{limit}: read {}",
            page.entries_read
        );
    }
    // Through the use case too: a full walk of pages of 4 never touches bulk-*.
    let mut token = None;
    let mut seen = 0;
    loop {
        let page = svc
            .list(
                &mine,
                ListQuery {
                    label: None,
                    limit: 4,
                    next_token: token.take(),
                    filter: Default::default(),
                },
            )
            .await
            .unwrap();
        seen += page.items.len();
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, 6);
}

/// A table written by the layout before visibility entries (records with `entity`,
/// global guards `N#<name_key>`, no entries): listings see none of it until the backfill
/// runs; the backfill is resumable page by page, idempotent, and leaves the table
/// consistent; updates and deletes of old records work before and after it.
#[tokio::test]
async fn a_table_of_the_older_layout_is_backfilled() {
    let env = TestEnv::new().await;
    let ddb = aws_sdk_dynamodb::Client::new(&env.sdk);
    let table = env.stack.table.clone();
    let svc = &env.functions.integrations;
    let owner = Caller::user("old-owner", vec![]);
    let new = |v: serde_json::Value| {
        integrations_core::http::input::parse_new(v.to_string().as_bytes()).unwrap()
    };
    // Written as this code writes, then turned into the older layout by hand.
    let mut ids = Vec::new();
    for n in 0..25 {
        let created = svc
            .create(
                &owner,
                new(form(&format!("old-{n:02}"), &["old-team"], &[])),
                None,
            )
            .await
            .unwrap();
        let integrations_core::app::integrations::Created::New(i) = created else {
            panic!("replayed");
        };
        ids.push(i.id.to_string());
    }
    let items = ddb
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    for item in items {
        let pk = item["pk"].as_s().unwrap().clone();
        if pk.starts_with("V#") {
            ddb.delete_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .send()
                .await
                .unwrap();
        } else if let Some(rest) = pk.strip_prefix("N#") {
            let (_, name_key) = rest.rsplit_once('#').unwrap();
            let mut old: HashMap<String, AttributeValue> = item.clone();
            old.insert("pk".into(), AttributeValue::S(format!("N#{name_key}")));
            ddb.put_item()
                .table_name(&table)
                .set_item(Some(old))
                .send()
                .await
                .unwrap();
            ddb.delete_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .send()
                .await
                .unwrap();
        } else if pk.starts_with("I#") {
            ddb.update_item()
                .table_name(&table)
                .key("pk", AttributeValue::S(pk))
                .update_expression("SET entity = :e")
                .expression_attribute_values(":e", AttributeValue::S("integration".into()))
                .send()
                .await
                .unwrap();
        }
    }
    let s = store(&env);
    let check = s.check_names().await.unwrap();
    assert_eq!(check.unlisted.len(), 25, "{check:#?}");
    assert_eq!(check.orphan_guards.len(), 25);
    let list = |who: Caller| async move {
        svc.list(
            &who,
            ListQuery {
                label: None,
                limit: 100,
                next_token: None,
                filter: Default::default(),
            },
        )
        .await
        .unwrap()
        .items
        .len()
    };
    assert_eq!(
        list(owner.clone()).await,
        0,
        "not listed before the backfill"
    );
    // An old record can still be renamed (its per-owner guard is written by it).
    svc.update(
        &owner,
        &ids[0],
        integrations_core::app::integrations::Precondition::None,
        |c| {
            integrations_core::http::input::parse_patch(
                br#"{"name":"old-renamed"}"#,
                &c.aws_account_id,
                c.credentials.kind(),
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(list(owner.clone()).await, 1, "the update listed it");

    // Pages of 10 items scanned, resumed from where each stopped.
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut indexed = 0;
    loop {
        let report = s.backfill(after.as_deref(), 10).await.unwrap();
        pages += 1;
        indexed += report.indexed;
        assert!(report.contested.is_empty(), "{report:?}");
        match report.resume_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(pages > 3, "{pages} pages");
    assert_eq!(indexed, 25);
    let check = s.check_names().await.unwrap();
    assert!(check.is_consistent(), "{check:#?}");
    assert_eq!(list(owner.clone()).await, 25);
    let teammate = Caller::user("someone", vec![GroupName::parse("old-team").unwrap()]);
    assert_eq!(list(teammate).await, 25);
    // Run again: nothing changes.
    let again = s.backfill(None, 1000).await.unwrap();
    assert_eq!(again.indexed, 25);
    assert_eq!(again.legacy_guards_removed, 0);
    assert!(s.check_names().await.unwrap().is_consistent());
    // No record is left in the retired index.
    let legacy = ddb
        .scan()
        .table_name(&table)
        .filter_expression("attribute_exists(entity)")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.count, 0);
    // Names are per owner now: another owner may use an old name.
    let other = Caller::user("new-owner", vec![]);
    svc.create(&other, new(form("old-01", &[], &[])), None)
        .await
        .unwrap();
    svc.delete(
        &owner,
        &ids[1],
        integrations_core::app::integrations::Precondition::None,
    )
    .await
    .unwrap();
    assert!(s.check_names().await.unwrap().is_consistent());
}
