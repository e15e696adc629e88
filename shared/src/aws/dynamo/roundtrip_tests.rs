//! Property tests of the item form: every valid integration (any valid value of every
//! field, with or without a bucket, a test result, a role) is stored and read back equal,
//! and its stored item carries the keys the table and its indexes need; its stream image
//! reads back equal too.

use super::layout::{from_item, integration_of_image, to_item};
use crate::domain::HealthStatus;
use crate::domain::{
    AccessKeyId, AccountId, BucketStatus, Credentials, Description, ExternalId, Integration,
    IntegrationId, IntegrationName, Label, LastTest, Region, RoleName, Sealed, SessionDuration,
    StateBucket, Timestamp,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = IntegrationName> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| IntegrationName::parse(&s).unwrap())
}

fn description() -> impl Strategy<Value = Option<Description>> {
    proptest::option::of(
        "\\PC{0,200}".prop_filter_map("a valid description", |s| Description::parse(&s).ok()),
    )
}

fn labels() -> impl Strategy<Value = Vec<Label>> {
    proptest::collection::vec(
        "\\PC{1,20}".prop_filter_map("a valid label", |s| Label::parse(&s).ok()),
        0..8,
    )
    .prop_map(|mut v| {
        v.dedup();
        v
    })
}

fn account() -> impl Strategy<Value = AccountId> {
    "[0-9]{12}".prop_map(|s| AccountId::parse(&s).unwrap())
}

fn key_id() -> impl Strategy<Value = AccessKeyId> {
    "AKIA[A-Z2-7]{16}".prop_map(|s| AccessKeyId::parse(&s).unwrap())
}

fn region() -> impl Strategy<Value = Region> {
    prop_oneof![
        Just("us-east-1"),
        Just("eu-central-1"),
        Just("ap-southeast-2"),
        Just("cn-north-1"),
        Just("us-gov-west-1"),
    ]
    .prop_map(|s| Region::parse(s).unwrap())
}

fn role() -> impl Strategy<Value = Option<(RoleName, Option<ExternalId>)>> {
    proptest::option::of((
        "([a-z]{1,8}/){0,2}[A-Za-z0-9+=,.@_-]{1,64}".prop_map(|s| RoleName::parse(&s).unwrap()),
        proptest::option::of(
            "[A-Za-z0-9+=,.@:/_-]{2,64}".prop_map(|s| ExternalId::parse(&s).unwrap()),
        ),
    ))
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_000_000_000_000).prop_map(|ms| {
        let t =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
        Timestamp::from(t)
    })
}

fn bucket(account: AccountId, region: Region) -> impl Strategy<Value = Option<StateBucket>> {
    let status = prop_oneof![
        Just(BucketStatus::Pending),
        Just(BucketStatus::Provisioning),
        Just(BucketStatus::Ready),
        Just(BucketStatus::Failed),
    ];
    proptest::option::of(
        (
            status,
            proptest::option::of(timestamp()),
            0u32..10,
            "\\PC{0,80}",
        )
            .prop_map(move |(status, at, attempts, reason)| {
                let mut b = StateBucket::pending(&account, &region, Timestamp::now());
                b.status = status;
                b.status_changed_at = at;
                b.attempts = attempts;
                if status == BucketStatus::Failed {
                    b.reason = Some(reason);
                }
                if status == BucketStatus::Ready {
                    b.arn = Some(b.name.arn(region.partition()));
                    b.backend = Some(crate::domain::backend_block(&b.name, &region, "x"));
                }
                b
            }),
    )
}

prop_compose! {
    fn integration()(
        (name, description, labels) in (name(), description(), labels()),
        (account, key_id, region, role) in (account(), key_id(), region(), role()),
        session in 900u32..=43200,
        secret in proptest::collection::vec(any::<u8>(), 1..300),
        create_state_bucket in any::<bool>(),
        last_test in proptest::option::of((timestamp(), any::<bool>())),
        (created_at, updated_at) in (timestamp(), timestamp()),
        revision in 1u64..1_000_000,
    )(
        bucket in bucket(account.clone(), region.clone()),
        name in Just(name), description in Just(description), labels in Just(labels),
        account in Just(account), key_id in Just(key_id), region in Just(region),
        role in Just(role), session in Just(session), secret in Just(secret),
        create_state_bucket in Just(create_state_bucket), last_test in Just(last_test),
        created_at in Just(created_at), updated_at in Just(updated_at), revision in Just(revision),
    ) -> Integration {
        let (role, external) = match role {
            Some((r, e)) => (Some(r), e),
            None => (None, None),
        };
        Integration {
            id: IntegrationId::new(),
            name,
            description,
            labels,
            aws_account_id: account,
            // Both kinds: a delegation record (it needs a role) when the first byte is even.
            credentials: if role.is_some() && secret[0] % 2 == 0 {
                Credentials::RoleDelegation
            } else {
                Credentials::AccessKeys { key_id, secret: Sealed(secret) }
            },
            aws_assumed_role_name: role,
            aws_external_id: external,
            aws_session_duration: SessionDuration::try_from(session).unwrap(),
            aws_default_region: region,
            create_state_bucket,
            state_bucket: bucket,
            // Health and key dates ride on the test's randomness: present with a test.
            health: last_test.as_ref().map(|(at, ok)| crate::domain::Health {
                status: if *ok { HealthStatus::Ok } else { HealthStatus::Failing },
                since: created_at.clone(),
                checked_at: at.clone(),
                step: (!ok).then(|| "credentials".to_owned()),
                detail: (!ok).then(|| "AWS refused the key".to_owned()),
                hint: (!ok).then(|| "Create a new key & paste it: \"x\"".to_owned()),
            }),
            key_created_at: last_test.as_ref().map(|_| created_at.clone()),
            key_last_used_at: last_test.as_ref().filter(|(_, ok)| *ok).map(|(at, _)| at.clone()),
            last_test: last_test.map(|(at, ok)| LastTest { at, ok }),
            created_at,
            updated_at,
            created_by: "arn:aws:iam::123456789012:user/someone".into(),
            // Shared or not, by the revision's parity (an empty list is not stored).
            shared_with: (revision % 2 == 1)
                .then(|| crate::domain::GroupName::parse("team-a").unwrap())
                .into_iter()
                .collect(),
            revision,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_valid_integration_round_trips_through_its_item(i in integration()) {
        let item = to_item(&i).unwrap();
        // The keys the table and the by_name index need are always there.
        prop_assert_eq!(item["pk"].as_s().unwrap(), &format!("I#{}", i.id));
        prop_assert_eq!(item["name_key"].as_s().unwrap(), &i.name.as_str().to_lowercase());
        // A waiting bucket is in the sweep index, with a non-empty sort key.
        let waiting = i.state_bucket.as_ref().is_some_and(|b| {
            matches!(b.status, BucketStatus::Pending | BucketStatus::Provisioning)
        });
        prop_assert_eq!(item.contains_key("sweep_pk"), waiting);
        if let Some(at) = item.get("sweep_at") {
            prop_assert!(!at.as_s().unwrap().is_empty());
        }
        // A stream image of the item (its JSON form, as Lambda delivers it) reads the same.
        let image = serde_json::to_value(serde_dynamo::Item::from(item.clone())).unwrap();
        let seen = integration_of_image(serde_json::from_value(image).unwrap()).unwrap();
        prop_assert_eq!(&seen, &i);
        let back = from_item(item).unwrap();
        prop_assert_eq!(&back, &i);
        prop_assert_eq!(
            serde_json::to_value(back.view()).unwrap(),
            serde_json::to_value(i.view()).unwrap()
        );
    }
}
