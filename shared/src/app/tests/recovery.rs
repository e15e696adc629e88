//! What cannot be retried away: a stored secret that no longer decrypts fails the bucket
//! with the fix (new keys), and after the rotation a retry request provisions it.

use super::*;
use crate::app::fakes::patch;
use crate::app::integrations::Precondition;
use crate::app::provisioning::Outcome;
use serde_json::json;

#[tokio::test]
async fn an_unreadable_secret_fails_the_bucket_until_the_keys_are_rotated() {
    let w = World::new();
    let other = w.saved(json!({"name": "other"})).await;
    let i = w
        .with_bucket("aws-production", BucketStatus::Pending, &ago(60))
        .await;
    // A ciphertext copied from another record: KMS refuses it under this context.
    w.store
        .edit(&i.id, |r| r.credentials = other.credentials.clone());

    let outcome = w.provisioner().provision(i.id.as_str()).await.unwrap();
    let Outcome::Failed(why) = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(why.contains("rotate the keys"), "{why}");
    let b = w.bucket_of(&i.id);
    assert_eq!(
        b.status,
        BucketStatus::Failed,
        "not handed back for endless retries"
    );
    assert_eq!(b.reason.as_deref(), Some(why.as_str()));
    assert!(
        w.account.calls().is_empty(),
        "nothing reached the user's account"
    );

    // New keys, then a retry request: the bucket is provisioned.
    let rotate = patch(json!({
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    }));
    w.integrations
        .update(&caller(), i.id.as_str(), Precondition::None, rotate)
        .await
        .unwrap();
    let queued = w
        .provisioner()
        .request(&caller(), i.id.as_str())
        .await
        .unwrap();
    assert_eq!(queued.status, BucketStatus::Pending);
    let again = w.provisioner().provision(i.id.as_str()).await.unwrap();
    assert_eq!(again, Outcome::Ready);
    assert_eq!(w.bucket_of(&i.id).status, BucketStatus::Ready);
}
