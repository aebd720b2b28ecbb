//! The message a notification carries, with its JSON encoded once: the dispatcher encodes
//! it when it builds the notification, and both the outbox log and the webhook body copy
//! those bytes instead of serialising the message again. Any mutable access drops the
//! bytes, so they can never describe an older version of the message.

use crate::alert::WebhookMessage;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A [`WebhookMessage`] and, when known, its JSON (exactly what serialising it gives).
/// Reads go through `Deref`; `DerefMut` forgets the JSON. Serialises as the message.
#[derive(Debug, Clone)]
pub struct Message {
    message: WebhookMessage,
    json: Option<Arc<RawValue>>,
}

impl Message {
    /// The message with its JSON encoded now (when it is about to be stored and sent).
    pub fn encoded(message: WebhookMessage) -> Self {
        let json = serde_json::value::to_raw_value(&message)
            .ok()
            .map(Arc::from);
        Message { message, json }
    }

    /// Whether the JSON is at hand.
    #[cfg(test)]
    pub(crate) fn has_json(&self) -> bool {
        self.json.is_some()
    }
}

impl From<WebhookMessage> for Message {
    fn from(message: WebhookMessage) -> Self {
        Message {
            message,
            json: None,
        }
    }
}

impl Deref for Message {
    type Target = WebhookMessage;
    fn deref(&self) -> &WebhookMessage {
        &self.message
    }
}

impl DerefMut for Message {
    fn deref_mut(&mut self) -> &mut WebhookMessage {
        self.json = None;
        &mut self.message
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.json {
            Some(raw) => raw.serialize(s),
            None => self.message.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WebhookMessage::deserialize(d).map(Message::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{LabelSet, WebhookAlert};

    fn sample() -> WebhookMessage {
        let mut labels = LabelSet::new();
        labels.insert("alertname".into(), "A \"quoted\" <name>".into());
        let alert = WebhookAlert {
            status: crate::alert::Status::Firing,
            labels: labels.clone(),
            annotations: LabelSet::new(),
            starts_at: "2026-12-02T00:00:00Z".into(),
            ends_at: "0001-01-01T00:00:00Z".into(),
            generator_url: String::new(),
            fingerprint: "0123456789abcdef".into(),
        };
        WebhookMessage::new("r", vec![alert], labels, "http://am", "{}:{}", "new_alerts")
    }

    #[test]
    fn the_encoded_json_is_what_serialising_the_message_gives() {
        let plain = serde_json::to_string(&sample()).expect("json");
        let m = Message::encoded(sample());
        assert!(m.has_json());
        assert_eq!(serde_json::to_string(&m).expect("json"), plain);
        // and inside a larger value, as the outbox and templates use it
        let v = serde_json::to_value(&m).expect("value");
        assert_eq!(
            v,
            serde_json::from_str::<serde_json::Value>(&plain).expect("v")
        );
        let back: Message = serde_json::from_str(&plain).expect("back");
        assert_eq!(back, m);
        assert!(!back.has_json());
    }

    #[test]
    fn a_change_drops_the_json() {
        let mut m = Message::encoded(sample());
        m.truncated_alerts = 7;
        assert!(!m.has_json());
        let v: serde_json::Value = serde_json::to_value(&m).expect("value");
        assert_eq!(
            v["truncatedAlerts"], 7,
            "the change is what gets serialised"
        );
        let mut c = Message::encoded(sample());
        c.alerts.clear();
        assert_eq!(
            serde_json::to_value(&c).expect("v")["alerts"],
            serde_json::json!([])
        );
    }
}
