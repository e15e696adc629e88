//! The store contract: the same cases against any `IntegrationStore`. The unit tests run
//! them on [`MemoryStore`](super::MemoryStore); the harness's tests run them on the
//! DynamoDB store over DynamoDB Local, so the fake the use-case tests rely on cannot
//! drift from the real store. Each case panics with what differed.
//!
//! Cases use their own owners and groups (prefixed by `run`'s `tag`), so they can share
//! a table with anything else.

use super::{FixedKeys, MemorySealer, ACCOUNT, KEY_ID, SECRET};
use crate::app::integrations::{Created, Integrations, Precondition};
use crate::app::keys::{ServiceKeys, DEFAULT_TOKEN_TTL};
use crate::domain::{AccessKeyId, AccountId, Description, IntegrationName, Label};
use crate::domain::{AuditAction, AuditEvent, Caller, GroupName, Integration, Visibility};
use crate::domain::{AuthKind, Credentials, KeyDates, RoleName, StateBucket, Timestamp};
use crate::domain::{IntegrationPatch, NewCredentials, NewIntegration, SecretAccessKey};
use crate::ports::{
    BucketGuard, CreateOutcome, HistoryQuery, Idempotency, IntegrationListing, IntegrationStore,
    ListQuery, RecordFilter, ViewQuery, WriteOutcome,
};
use std::sync::Arc;

fn name(n: &str) -> IntegrationName {
    IntegrationName::parse(n).expect("a valid name")
}

/// A create form (built from domain values: the contract never goes through HTTP).
fn form(n: &str, groups: &[String], labels: &[&str]) -> NewIntegration {
    NewIntegration {
        name: name(n),
        description: None,
        labels: labels
            .iter()
            .map(|l| Label::parse(l).expect("a label"))
            .collect(),
        aws_account_id: AccountId::parse(ACCOUNT).expect("account"),
        credentials: NewCredentials::AccessKeys {
            key_id: AccessKeyId::parse(KEY_ID).expect("key id"),
            secret: SecretAccessKey::parse(SECRET).expect("secret"),
        },
        aws_assumed_role_name: None,
        aws_external_id: None,
        aws_session_duration: Default::default(),
        aws_default_region: Default::default(),
        create_state_bucket: false,
        shared_with: groups
            .iter()
            .map(|g| GroupName::parse(g).expect("a group"))
            .collect(),
    }
}

fn patch(
    p: IntegrationPatch,
) -> impl FnOnce(&Integration) -> crate::error::Result<IntegrationPatch> {
    move |_| Ok(p)
}

/// A store the contract runs on: writes and listing.
pub trait Store: IntegrationStore + IntegrationListing {}
impl<T: IntegrationStore + IntegrationListing> Store for T {}

struct Case {
    store: Arc<dyn Store>,
    svc: Integrations,
    tag: String,
}

/// Runs every case against `store`. `tag` keeps this run's owners and groups apart from
/// anything else in the table (e.g. a short random string).
pub async fn run<S: Store + 'static>(store: Arc<S>, tag: &str) {
    let keys = Arc::new(ServiceKeys::new(
        Arc::new(FixedKeys::default()),
        DEFAULT_TOKEN_TTL,
    ));
    let c = Case {
        svc: Integrations::new(store.clone(), Arc::new(MemorySealer::default()))
            .with_keys(keys)
            .with_listing(store.clone()),
        store,
        tag: tag.to_owned(),
    };
    c.names_are_unique_per_owner().await;
    c.listings_read_only_what_the_caller_may_see().await;
    c.pages_are_full_ordered_and_complete().await;
    c.writes_keep_listings_exact().await;
    c.conditional_writes_and_idempotency().await;
    c.audit_entries_come_with_their_changes().await;
    c.a_write_as_seen_holds_only_on_the_record_as_seen().await;
    c.delegation_records_round_trip_without_keys().await;
    c.key_dates_are_recorded_filtered_and_cleared_by_a_key_change()
        .await;
}

impl Case {
    fn user(&self, who: &str, groups: &[&str]) -> Caller {
        let groups = groups
            .iter()
            .map(|g| GroupName::parse(&self.group(g)).expect("a valid group"))
            .collect();
        Caller::user(format!("{}-{who}", self.tag), groups)
    }

    fn group(&self, g: &str) -> String {
        format!("{}-{g}", self.tag)
    }

    async fn create(
        &self,
        who: &Caller,
        name: &str,
        groups: &[&str],
        labels: &[&str],
    ) -> Integration {
        let groups: Vec<String> = groups.iter().map(|g| self.group(g)).collect();
        match self
            .svc
            .create(who, form(name, &groups, labels), None)
            .await
        {
            Ok(Created::New(i)) => *i,
            other => panic!("create {name} for {}: {other:?}", who.id),
        }
    }

    /// Every page of a caller's listing through the use case (tokens included), as
    /// (name, owner) pairs, checking each page is full while more remain.
    async fn names(
        &self,
        who: &Caller,
        label: Option<&str>,
        limit: usize,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut token = None;
        for _ in 0..100 {
            let q = ListQuery {
                filter: Default::default(),
                label: label.map(str::to_owned),
                limit,
                next_token: token.take(),
            };
            let page = self.svc.list(who, q).await.expect("list");
            assert!(
                page.next_token.is_none() || page.items.len() == limit,
                "a page with a token must be full: {} of {limit}",
                page.items.len()
            );
            out.extend(
                page.items
                    .iter()
                    .map(|i| (i.name.as_str().to_owned(), i.created_by.clone())),
            );
            match page.next_token {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
        panic!("a listing that never ends");
    }

    async fn update(
        &self,
        who: &Caller,
        id: &str,
        p: IntegrationPatch,
    ) -> crate::error::Result<Integration> {
        self.svc.update(who, id, Precondition::None, patch(p)).await
    }

    async fn names_taken(&self, who: &Caller, name: &str) -> bool {
        match self.svc.create(who, form(name, &[], &[]), None).await {
            Ok(_) => false,
            Err(crate::error::Error::Conflict { field, .. }) => field.as_deref() == Some("name"),
            Err(e) => panic!("create {name}: {e:?}"),
        }
    }

    async fn names_are_unique_per_owner(&self) {
        let ann = self.user("names-ann", &[]);
        let bob = self.user("names-bob", &[]);
        self.create(&ann, "aws-prod", &[], &[]).await;
        assert!(
            self.names_taken(&ann, "AWS-Prod").await,
            "ann's name, any case"
        );
        let bobs = self.create(&bob, "aws-prod", &[], &[]).await;
        let other = self.create(&bob, "aws-dev", &[], &[]).await;
        // A rename onto the owner's own name is refused; onto another owner's is fine.
        let onto = self
            .update(
                &bob,
                other.id.as_str(),
                IntegrationPatch {
                    name: Some(name("aws-prod")),
                    ..Default::default()
                },
            )
            .await;
        assert!(
            matches!(onto, Err(crate::error::Error::Conflict { .. })),
            "{onto:?}"
        );
        self.update(
            &bob,
            bobs.id.as_str(),
            IntegrationPatch {
                name: Some(name("aws-prod-2")),
                ..Default::default()
            },
        )
        .await
        .expect("rename");
        // The old name is free again, for bob only.
        assert!(
            !self.names_taken(&bob, "aws-prod").await,
            "bob's old name is free"
        );
        assert!(self.names_taken(&ann, "aws-prod").await);
    }

    async fn listings_read_only_what_the_caller_may_see(&self) {
        let ann = self.user("vis-ann", &[]);
        let bob = self.user("vis-bob", &["vis-team"]);
        let carol = self.user("vis-carol", &["vis-team", "vis-empty"]);
        let dave = self.user("vis-dave", &[]);
        let a = self.create(&ann, "shared-db", &["vis-team"], &[]).await;
        self.create(&ann, "ann-only", &[], &[]).await;
        let b = self.create(&bob, "shared-db", &["vis-team"], &[]).await;
        self.create(&bob, "bob-only", &[], &[]).await;
        let n = |v: &[(&str, &Caller)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(n, c)| (n.to_string(), c.id.clone()))
                .collect()
        };
        assert_eq!(
            self.names(&ann, None, 10).await,
            n(&[("ann-only", &ann), ("shared-db", &ann)])
        );
        // Two owners' integrations of one name: both, ordered by id.
        let (first, second) = if a.id < b.id {
            (&ann, &bob)
        } else {
            (&bob, &ann)
        };
        assert_eq!(
            self.names(&carol, None, 10).await,
            n(&[("shared-db", first), ("shared-db", second)])
        );
        assert_eq!(
            self.names(&bob, None, 1).await,
            n(&[
                ("bob-only", &bob),
                ("shared-db", first),
                ("shared-db", second)
            ])
        );
        assert!(self.names(&dave, None, 10).await.is_empty());
        // An admin sees everything: at least these four, in order.
        let admin = Caller::admin(format!("{}-admin", self.tag), vec![]);
        let page = self
            .store
            .list(&ViewQuery {
                filter: Default::default(),
                now: crate::domain::Timestamp::now(),
                visible_to: Visibility::of(&admin),
                label: None,
                limit: 100,
                after: None,
            })
            .await
            .expect("admin list");
        let mine: Vec<&Integration> = page
            .items
            .iter()
            .filter(|i| i.created_by.starts_with(&format!("{}-vis-", self.tag)))
            .collect();
        assert_eq!(mine.len(), 4, "{mine:?}");
        let positions: Vec<_> = page
            .items
            .iter()
            .map(crate::domain::ListPosition::of)
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "admin list out of order"
        );
    }

    async fn pages_are_full_ordered_and_complete(&self) {
        let ann = self.user("page-ann", &["page-team"]);
        let bob = self.user("page-bob", &["page-team"]);
        let mut expected = Vec::new();
        for n in 0..7 {
            let labels: &[&str] = if n % 2 == 0 { &["even"] } else { &[] };
            let name = format!("p{n}");
            self.create(&ann, &name, &["page-team"], labels).await;
            expected.push((name, ann.id.clone()));
        }
        for n in 0..3 {
            let name = format!("q{n}");
            self.create(&bob, &name, &["page-team"], &["even"]).await;
            expected.push((name, bob.id.clone()));
        }
        for limit in [1, 2, 3, 7, 10, 11] {
            assert_eq!(
                self.names(&ann, None, limit).await,
                expected,
                "limit {limit}"
            );
        }
        let even: Vec<_> = expected
            .iter()
            .filter(|(n, _)| n.starts_with('q') || n[1..].parse::<u32>().is_ok_and(|x| x % 2 == 0))
            .cloned()
            .collect();
        for limit in [1, 2, 3, 7] {
            assert_eq!(
                self.names(&bob, Some("even"), limit).await,
                even,
                "label, limit {limit}"
            );
        }
        // A token is the caller's and the query's only.
        let first = self
            .svc
            .list(
                &ann,
                ListQuery {
                    filter: Default::default(),
                    label: None,
                    limit: 2,
                    next_token: None,
                },
            )
            .await
            .expect("list");
        let token = first.next_token.expect("more than 2");
        for (who, label, limit) in [(&bob, None, 2), (&ann, Some("even"), 2), (&ann, None, 3)] {
            let q = ListQuery {
                filter: Default::default(),
                label: label.map(str::to_owned),
                limit,
                next_token: Some(token.clone()),
            };
            let e = self
                .svc
                .list(who, q)
                .await
                .expect_err("a token of another caller or query");
            assert!(format!("{e:?}").contains("next_token"), "{e:?}");
        }
    }

    async fn writes_keep_listings_exact(&self) {
        let ann = self.user("w-ann", &[]);
        let carol = self.user("w-carol", &["w-team"]);
        let i = self.create(&ann, "before", &["w-team"], &["blue"]).await;
        assert_eq!(self.names(&carol, Some("blue"), 5).await.len(), 1);
        let id = i.id.as_str();
        let renamed = self
            .update(
                &ann,
                id,
                IntegrationPatch {
                    name: Some(name("after")),
                    labels: Some(vec![Label::parse("red").expect("label")]),
                    ..Default::default()
                },
            )
            .await
            .expect("rename");
        assert_eq!(renamed.name.as_str(), "after");
        assert!(
            self.names(&carol, Some("blue"), 5).await.is_empty(),
            "old label"
        );
        assert_eq!(
            self.names(&carol, Some("red"), 5).await,
            [("after".to_owned(), ann.id.clone())]
        );
        self.update(
            &ann,
            id,
            IntegrationPatch {
                shared_with: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .expect("unshare");
        assert!(self.names(&carol, None, 5).await.is_empty(), "unshared");
        self.update(
            &ann,
            id,
            IntegrationPatch {
                shared_with: Some(vec![GroupName::parse(&self.group("w-team")).expect("group")]),
                ..Default::default()
            },
        )
        .await
        .expect("reshare");
        assert_eq!(self.names(&carol, None, 5).await.len(), 1, "reshared");
        self.svc
            .delete(&ann, id, Precondition::None)
            .await
            .expect("delete");
        assert!(self.names(&carol, None, 5).await.is_empty());
        assert!(self.names(&ann, None, 5).await.is_empty());
        assert!(!self.names_taken(&ann, "after").await, "the name is free");
    }

    async fn conditional_writes_and_idempotency(&self) {
        let ann = self.user("cond-ann", &[]);
        let i = self.create(&ann, "cond", &[], &[]).await;
        let mut stale = i.clone();
        stale.revision += 7;
        let mut next = i.clone();
        next.revision = stale.revision + 1;
        let audit = AuditEvent::updated(&ann, &stale, &next);
        assert_eq!(
            self.store
                .update(&next, &stale, &audit)
                .await
                .expect("update"),
            WriteOutcome::Stale
        );
        let audit = AuditEvent::deleted(&ann, &stale);
        assert_eq!(
            self.store.delete(&stale, &audit).await.expect("delete"),
            WriteOutcome::Stale
        );
        // Idempotency: same fingerprint replays, another is refused, a stored unkeyed
        // (older) fingerprint still replays.
        let key = |fingerprint: &str, legacy: Option<&str>| Idempotency {
            key: format!("{}#k1", ann.id),
            fingerprint: fingerprint.into(),
            legacy_fingerprint: legacy.map(str::to_owned),
            response: "{\"first\":true}".into(),
        };
        let mut fresh = i.clone();
        fresh.id = crate::domain::IntegrationId::new();
        fresh.name = name("cond-2");
        let created = AuditEvent::created(&ann, &fresh);
        let k = key("h1:aa", None);
        assert_eq!(
            self.store
                .create(&fresh, Some(&k), &created)
                .await
                .expect("create"),
            CreateOutcome::Created
        );
        let mut again = fresh.clone();
        again.id = crate::domain::IntegrationId::new();
        for (k, expect_replay) in [
            (key("h1:aa", None), true),
            (key("h1:bb", Some("h1:aa")), true),
            (key("h1:bb", Some("cc")), false),
        ] {
            let out = self
                .store
                .create(&again, Some(&k), &created)
                .await
                .expect("create");
            match out {
                CreateOutcome::Replay { response } if expect_replay => {
                    assert_eq!(response, "{\"first\":true}")
                }
                CreateOutcome::KeyReused if !expect_replay => {}
                other => panic!("{k:?}: {other:?}"),
            }
        }
    }

    /// `BucketGuard::seen`: the write holds while the record has the copy's revision and
    /// its bucket the copy's attempts and status time (or none, as the copy), and only then.
    async fn a_write_as_seen_holds_only_on_the_record_as_seen(&self) {
        let ann = self.user("seen-ann", &[]);
        let i = self.create(&ann, "seen", &[], &[]).await;
        let id = i.id.as_str();
        let read = || async { self.store.get(id).await.expect("get").expect("the record") };
        let write = |seen: Integration, bucket: StateBucket| async move {
            let guard = BucketGuard {
                seen: Some(&seen),
                ..Default::default()
            };
            let out = self.store.set_bucket(id, &bucket, guard, None).await;
            out.expect("set_bucket")
        };
        let at = |t: &str| Some(Timestamp::parse(t).expect("a time"));
        let account = AccountId::parse(ACCOUNT).expect("account");
        let mut pending = StateBucket::pending(&account, &Default::default(), Timestamp::now());
        pending.status_changed_at = at("2026-11-26T05:35:05.000Z");
        // No bucket, as seen: written; the same copy again no longer holds.
        let none = read().await;
        assert_eq!(
            write(none.clone(), pending.clone()).await,
            WriteOutcome::Written
        );
        assert_eq!(write(none, pending.clone()).await, WriteOutcome::Stale);
        let seen = read().await;
        let changed: [fn(&mut Integration); 4] = [
            |r| r.revision += 1,
            |r| r.state_bucket.iter_mut().for_each(|b| b.attempts += 1),
            |r| {
                let t = Timestamp::parse("2026-11-26T05:35:06.000Z").ok();
                r.state_bucket
                    .iter_mut()
                    .for_each(|b| b.status_changed_at = t.clone())
            },
            |r| {
                r.state_bucket
                    .iter_mut()
                    .for_each(|b| b.status_changed_at = None)
            },
        ];
        for change in changed {
            let mut other = seen.clone();
            change(&mut other);
            assert_eq!(write(other, pending.clone()).await, WriteOutcome::Stale);
        }
        // A bucket without a time, as seen.
        let mut timeless = pending.clone();
        timeless.status_changed_at = None;
        assert_eq!(write(seen, timeless.clone()).await, WriteOutcome::Written);
        let seen = read().await;
        let mut later = timeless.clone();
        later.attempts += 1;
        assert_eq!(write(seen.clone(), later).await, WriteOutcome::Written);
        // The write moved `attempts`: the earlier copy is stale now.
        assert_eq!(write(seen, timeless).await, WriteOutcome::Stale);
    }

    /// A test's key dates land on the record without a revision, a test that could not
    /// read them keeps them, a key IAM knows no use of loses its last use, the list's
    /// `key_older_than_days` finds the old key, and another key clears them.
    async fn key_dates_are_recorded_filtered_and_cleared_by_a_key_change(&self) {
        use crate::app::connection::Outcome;
        let ann = self.user("keys-ann", &[]);
        let old = self.create(&ann, "old-key", &[], &[]).await;
        let fresh = self.create(&ann, "fresh-key", &[], &[]).await;
        let days = |d: u64| Timestamp::ago(std::time::Duration::from_secs(d * 86_400));
        let used = KeyDates {
            created_at: days(200),
            last_used_at: Some(days(3)),
        };
        let get = |id: &str| {
            let (svc, ann, id) = (&self.svc, ann.clone(), id.to_owned());
            async move { svc.get(&ann, &id).await.expect("get") }
        };
        let record = |i: &Integration, key: Option<KeyDates>| {
            let (svc, ann, i) = (&self.svc, ann.clone(), i.clone());
            async move {
                svc.record_test(&ann, &i, Outcome::Passed, key.as_ref())
                    .await
                    .expect("record a test")
            }
        };
        record(&old, Some(used.clone())).await;
        record(
            &fresh,
            Some(KeyDates {
                created_at: days(1),
                last_used_at: None,
            }),
        )
        .await;
        let got = get(old.id.as_str()).await;
        assert_eq!(
            (got.key_created_at.as_ref(), got.key_last_used_at.as_ref()),
            (Some(&used.created_at), used.last_used_at.as_ref())
        );
        assert_eq!(got.revision, old.revision, "a test is not a revision");
        let older = |n: u32| {
            let (svc, ann) = (&self.svc, ann.clone());
            async move {
                let q = ListQuery {
                    label: None,
                    limit: 10,
                    next_token: None,
                    filter: RecordFilter {
                        key_older_than_days: Some(n),
                        ..Default::default()
                    },
                };
                let page = svc.list(&ann, q).await.expect("list");
                let mut names: Vec<String> = page
                    .items
                    .iter()
                    .map(|i| i.name.as_str().to_owned())
                    .collect();
                names.sort();
                names
            }
        };
        assert_eq!(older(90).await, ["old-key"]);
        assert_eq!(older(0).await, ["fresh-key", "old-key"]);
        assert!(older(365).await.is_empty());
        // A test that could not read them keeps them.
        record(&old, None).await;
        assert_eq!(
            get(old.id.as_str()).await.key_created_at,
            Some(used.created_at.clone())
        );
        // IAM knows no use (any more): the last use goes.
        record(
            &old,
            Some(KeyDates {
                last_used_at: None,
                ..used.clone()
            }),
        )
        .await;
        let got = get(old.id.as_str()).await;
        assert_eq!(
            (got.key_created_at.as_ref(), got.key_last_used_at.as_ref()),
            (Some(&used.created_at), None)
        );
        // An edit that keeps the key keeps its dates; another key clears them.
        let renamed = self
            .update(
                &ann,
                old.id.as_str(),
                IntegrationPatch {
                    description: Some(Some(Description::parse("kept").expect("text"))),
                    ..Default::default()
                },
            )
            .await
            .expect("describe");
        assert_eq!(renamed.key_created_at, Some(used.created_at.clone()));
        assert_eq!(
            get(old.id.as_str()).await.key_created_at,
            Some(used.created_at.clone())
        );
        let rotated = self
            .update(
                &ann,
                old.id.as_str(),
                IntegrationPatch {
                    keys: Some((
                        AccessKeyId::parse("AKIAROTATEDKEYAAAAA2").expect("key id"),
                        SecretAccessKey::parse(SECRET).expect("secret"),
                    )),
                    ..Default::default()
                },
            )
            .await
            .expect("rotate");
        assert_eq!(
            (
                rotated.key_created_at.as_ref(),
                rotated.key_last_used_at.as_ref()
            ),
            (None, None)
        );
        let got = get(old.id.as_str()).await;
        assert_eq!(
            (got.key_created_at.as_ref(), got.key_last_used_at.as_ref()),
            (None, None)
        );
        assert_eq!(older(0).await, ["fresh-key"]);
    }

    /// Role delegation (issue 21): a record with no key id and no ciphertext reads back as
    /// written, and a switch of kind either way leaves no trace of the other kind (a store
    /// that kept the key attributes would read back a record that is neither).
    async fn delegation_records_round_trip_without_keys(&self) {
        let ann = self.user("deleg-ann", &[]);
        let role = || Some(RoleName::parse("InfraKitchenRole").expect("a role"));
        let mut f = form("delegated", &[], &["prod"]);
        f.credentials = NewCredentials::RoleDelegation;
        f.aws_assumed_role_name = role();
        let i = match self.svc.create(&ann, f, None).await {
            Ok(Created::New(i)) => *i,
            other => panic!("create a delegation record: {other:?}"),
        };
        assert_eq!(i.credentials, Credentials::RoleDelegation);
        assert!(i.aws_external_id.is_some(), "no External ID generated");
        let read = |id: &str| {
            let id = id.to_owned();
            async move { self.store.get(&id).await.expect("get").expect("the record") }
        };
        assert_eq!(read(i.id.as_str()).await, i);
        // Listed like any other record.
        assert_eq!(
            self.names(&ann, Some("prod"), 5).await,
            [("delegated".to_owned(), ann.id.clone())]
        );

        // An access-key record switched to delegation: the key attributes go.
        let k = self.create(&ann, "switched", &[], &[]).await;
        let switched = self
            .update(
                &ann,
                k.id.as_str(),
                IntegrationPatch {
                    auth: Some(AuthKind::RoleDelegation),
                    aws_assumed_role_name: Some(role()),
                    ..Default::default()
                },
            )
            .await
            .expect("switch to role delegation");
        assert_eq!(switched.credentials, Credentials::RoleDelegation);
        assert_eq!(read(k.id.as_str()).await, switched);
        // And back: new keys, the generated External ID cleared.
        let back = self
            .update(
                &ann,
                k.id.as_str(),
                IntegrationPatch {
                    auth: Some(AuthKind::AccessKeys),
                    keys: Some((
                        AccessKeyId::parse(KEY_ID).expect("key id"),
                        SecretAccessKey::parse(SECRET).expect("secret"),
                    )),
                    ..Default::default()
                },
            )
            .await
            .expect("switch back to keys");
        assert_eq!(back.credentials.kind(), AuthKind::AccessKeys);
        assert_eq!(back.aws_external_id, None);
        assert_eq!(read(k.id.as_str()).await, back);
        // The trail: the switch recorded the secret destroyed, then set again.
        let page = self
            .store
            .history(
                k.id.as_str(),
                &HistoryQuery {
                    limit: 10,
                    next_token: None,
                },
            )
            .await
            .expect("history");
        let secret_changes: Vec<String> = page
            .events
            .iter()
            .flat_map(|e| &e.changes)
            .filter(|c| c.field == "aws_secret_access_key")
            .map(|c| c.to.as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(secret_changes, ["(set)", "(destroyed)", "(set)"]);
    }

    async fn audit_entries_come_with_their_changes(&self) {
        let ann = self.user("audit-ann", &[]);
        let i = self.create(&ann, "audited", &[], &[]).await;
        let id = i.id.as_str();
        self.update(
            &ann,
            id,
            IntegrationPatch {
                description: Some(Some(Description::parse("x").expect("text"))),
                ..Default::default()
            },
        )
        .await
        .expect("update");
        self.svc
            .delete(&ann, id, Precondition::None)
            .await
            .expect("delete");
        let page = self
            .store
            .history(
                id,
                &HistoryQuery {
                    limit: 10,
                    next_token: None,
                },
            )
            .await
            .expect("history");
        let actions: Vec<AuditAction> = page.events.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                AuditAction::Deleted,
                AuditAction::Updated,
                AuditAction::Created
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_memory_store_keeps_the_store_contract() {
        super::run(
            std::sync::Arc::new(super::super::MemoryStore::default()),
            "mem",
        )
        .await;
    }
}
