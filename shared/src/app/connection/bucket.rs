//! The state bucket step's verdict from HeadBucket and the caller's own buckets: free,
//! already the account's, another account's, or not decidable (and why).

use super::steps::{failed, passed, unreachable};
use super::{Availability, Step};
use crate::domain::{policies, BucketName, Partition, Region};
use crate::ports::{AwsFailure, HeadBucket};
use serde_json::json;

const STEP: &str = "state_bucket";

/// What the two S3 calls answered.
pub(super) struct BucketFindings<'a> {
    pub head: Result<HeadBucket, AwsFailure>,
    pub own: Result<Vec<String>, AwsFailure>,
    pub ms: u64,
    pub region: &'a Region,
    pub partition: Partition,
    pub bucket: &'a BucketName,
}

impl BucketFindings<'_> {
    pub(super) fn verdict(&self) -> (Step, Availability) {
        let (bucket, ms, region) = (self.bucket, self.ms, self.region);
        let owned = self
            .own
            .as_ref()
            .ok()
            .map(|names| names.iter().any(|n| *bucket == n.as_str()));
        match (&self.head, owned) {
            (Err(f), _) if f.kind().is_outage() => (
                unreachable(STEP, ms, "S3 HeadBucket", region, f),
                Availability::Unknown,
            ),
            (Err(f), _) => (
                failed(
                    STEP,
                    ms,
                    format!("S3 HeadBucket on {bucket} failed: {}", f.describe()),
                    Some(f),
                    "Check aws_default_region and the credentials' S3 permissions \
                     (policies.state_bucket_policy), then retry."
                        .into(),
                ),
                Availability::Unknown,
            ),
            (Ok(HeadBucket::NotFound), _) => (
                passed(
                    STEP,
                    ms,
                    format!("{bucket} does not exist yet: it can be created in {region}"),
                ),
                Availability::Available,
            ),
            (Ok(_), Some(true)) => (
                passed(
                    STEP,
                    ms,
                    format!("{bucket} already exists in this account: provisioning will adopt and harden it"),
                ),
                Availability::Owned,
            ),
            (Ok(_), Some(false)) => (self.taken(), Availability::Taken),
            (Ok(h), None) => self.owner_unknown(h),
        }
    }

    fn taken(&self) -> Step {
        failed(
            STEP,
            self.ms,
            format!(
                "{} exists and belongs to another AWS account: provisioning would fail",
                self.bucket
            ),
            None,
            "S3 names are global. Ask the owner of that bucket to delete it, or register an \
             account whose default bucket name is free."
                .into(),
        )
    }

    /// The bucket exists, and S3 could not be asked whose it is: an outage, or missing
    /// permissions (named, with the policy that grants them).
    fn owner_unknown(&self, head: &HeadBucket) -> (Step, Availability) {
        let own_failure = self.own.as_ref().err();
        if let Some(f) = own_failure.filter(|f| f.kind().is_outage()) {
            return (
                unreachable(STEP, self.ms, "S3 ListBuckets", self.region, f),
                Availability::Unknown,
            );
        }
        let arn = self.bucket.arn(self.partition);
        let missing = match head {
            HeadBucket::Forbidden => format!("s3:ListBucket on {arn} and s3:ListAllMyBuckets"),
            _ => "s3:ListAllMyBuckets".to_owned(),
        };
        let mut step = failed(
            STEP,
            self.ms,
            format!(
                "cannot tell whether {} is yours: the credentials lack {missing}",
                self.bucket
            ),
            own_failure,
            format!("Allow {missing} (see policies.state_bucket_policy, scoped to {arn})."),
        );
        step.policies = Some(json!({
            "state_bucket_policy": policies::state_bucket_policy(self.partition, self.bucket)
        }));
        (step, Availability::Forbidden)
    }
}
