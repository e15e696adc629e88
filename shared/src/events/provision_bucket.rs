//! The provision-bucket function's three triggers (template.yaml): the table's stream,
//! the sweeper's EventBridge schedule, and API Gateway (the state-bucket routes). Each
//! source names itself in its envelope, and an event is parsed once into its type.

use crate::app::provisioning::Provisioner;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use lambda_http::request::LambdaRequest;
use serde_json::Value;

/// One invocation of the provision-bucket function, by trigger.
pub enum ProvisionBucketEvent {
    /// DynamoDB stream records: `Records[].eventSource` is `aws:dynamodb`.
    Stream(StreamEvent),
    /// The sweeper's schedule: `source: aws.events`, `detail-type: Scheduled Event`.
    Schedule,
    /// API Gateway HTTP API (payload v2): `version: 2.0` with a `routeKey`.
    Http(Box<LambdaRequest>),
}

/// Which trigger an envelope names, before its body is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Stream,
    Schedule,
    Http,
}

impl Trigger {
    pub fn of(payload: &Value) -> Option<Self> {
        let text = |ptr: &str| payload.pointer(ptr).and_then(|v| v.as_str());
        if text("/Records/0/eventSource") == Some("aws:dynamodb") {
            Some(Trigger::Stream)
        } else if text("/source") == Some("aws.events")
            && text("/detail-type") == Some("Scheduled Event")
        {
            Some(Trigger::Schedule)
        } else if text("/version") == Some("2.0") && text("/routeKey").is_some() {
            Some(Trigger::Http)
        } else {
            None
        }
    }
}

impl ProvisionBucketEvent {
    pub fn parse(payload: Value) -> Result<Self, String> {
        match Trigger::of(&payload) {
            Some(Trigger::Stream) => serde_json::from_value(payload)
                .map(ProvisionBucketEvent::Stream)
                .map_err(|e| format!("DynamoDB stream event does not parse: {e}")),
            Some(Trigger::Schedule) => Ok(ProvisionBucketEvent::Schedule),
            Some(Trigger::Http) => serde_json::from_value(payload)
                .map(|r| ProvisionBucketEvent::Http(Box::new(r)))
                .map_err(|e| format!("API Gateway event does not parse: {e}")),
            None => Err(
                "unsupported event: expected a DynamoDB stream batch, the sweeper's \
                         scheduled event or an API Gateway HTTP API (v2) request"
                    .into(),
            ),
        }
    }
}

/// Entry point of the provision-bucket Lambda.
pub async fn handle(p: &Provisioner, payload: Value) -> Result<Value, String> {
    match ProvisionBucketEvent::parse(payload)? {
        ProvisionBucketEvent::Stream(event) => {
            let response = super::stream::handle(p, &event).await;
            serde_json::to_value(response).map_err(|e| format!("stream response: {e}"))
        }
        ProvisionBucketEvent::Schedule => {
            // A failed sweep fails the invocation: EventBridge retries it, and the next
            // scheduled run finds the same buckets due anyway.
            let report = p.sweep().await.map_err(|e| {
                let chain = e.chain();
                tracing::error!(error = %chain, "sweep failed");
                format!("sweep: {chain}")
            })?;
            serde_json::to_value(report).map_err(|e| format!("sweep report: {e}"))
        }
        ProvisionBucketEvent::Http(req) => {
            let resp = crate::http::state_bucket::handle(p, (*req).into()).await;
            serde_json::to_value(crate::http::response::apigw_v2(resp))
                .map_err(|e| format!("API Gateway response: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_trigger_is_read_from_the_envelope() {
        let stream = json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "MODIFY"}]});
        let schedule = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let other_event = json!({"source": "aws.events", "detail-type": "Object Created"});
        let http = json!({"version": "2.0", "routeKey": "GET /integrations/aws/{id}/state-bucket"});
        assert_eq!(Trigger::of(&stream), Some(Trigger::Stream));
        assert_eq!(Trigger::of(&schedule), Some(Trigger::Schedule));
        assert_eq!(Trigger::of(&other_event), None);
        assert_eq!(Trigger::of(&json!({})), None);
        assert_eq!(Trigger::of(&http), Some(Trigger::Http));
        let events = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/");
        for (file, want) in [
            ("provision-bucket.stream.json", Trigger::Stream),
            ("provision-bucket.sweep.json", Trigger::Schedule),
            ("provision-bucket.post.json", Trigger::Http),
            ("provision-bucket.get.json", Trigger::Http),
        ] {
            let text = std::fs::read_to_string(format!("{events}{file}")).expect(file);
            let payload: Value = serde_json::from_str(&text).expect(file);
            assert_eq!(Trigger::of(&payload), Some(want), "{file}");
            assert!(
                ProvisionBucketEvent::parse(payload).is_ok(),
                "{file} parses"
            );
        }
    }

    #[test]
    fn an_unknown_event_is_refused_by_name() {
        let err = ProvisionBucketEvent::parse(json!({"hello": "world"})).err();
        assert!(err.is_some_and(|e| e.contains("unsupported event")));
    }
}

#[cfg(test)]
mod property_tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            prop_oneof![
                Just("aws:dynamodb".to_owned()),
                Just("aws.events".to_owned()),
                Just("Scheduled Event".to_owned()),
                Just("2.0".to_owned()),
                "\\PC{0,20}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("Records".to_owned()),
                        Just("eventSource".to_owned()),
                        Just("source".to_owned()),
                        Just("detail-type".to_owned()),
                        Just("version".to_owned()),
                        Just("routeKey".to_owned()),
                        Just("dynamodb".to_owned()),
                        "[a-zA-Z]{1,10}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any payload is parsed into one trigger or refused with a reason; never a panic.
        #[test]
        fn any_payload_is_a_trigger_or_a_reason(payload in any_json()) {
            let trigger = Trigger::of(&payload);
            match ProvisionBucketEvent::parse(payload) {
                Ok(ProvisionBucketEvent::Stream(_)) => prop_assert_eq!(trigger, Some(Trigger::Stream)),
                Ok(ProvisionBucketEvent::Schedule) => prop_assert_eq!(trigger, Some(Trigger::Schedule)),
                Ok(ProvisionBucketEvent::Http(_)) => prop_assert_eq!(trigger, Some(Trigger::Http)),
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
    }
}
