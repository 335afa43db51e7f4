//! Delivery to push gateways (the Push Gateway API, `POST /_matrix/push/v1/notify`).
//!
//! Each notification for a user with pushers becomes a background task that posts it to each of
//! the user's pushers. A request that fails on the network, or that the gateway answers with 429
//! or a 5xx, is retried with exponential back-off; other answers end it. A pushkey the gateway
//! lists as `rejected` has its pusher removed, as the spec requires. At most [`MAX_IN_FLIGHT`]
//! deliveries run at once; the rest wait.

use std::{sync::Arc, time::Duration};

use ruma::{
    OwnedEventId, OwnedRoomId, OwnedUserId, UserId,
    api::client::push::PusherKind,
    push::{Action, PushFormat},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::{
    PushError,
    counts::Counts,
    evaluate::highlights,
    pushers::{Pushers, StoredPusher},
};

/// Deliveries running at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Attempts per delivery, the first included.
const MAX_ATTEMPTS: u32 = 6;
/// Wait before the first retry; doubled for each further one (1, 2, 4, 8, 16 s).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Time limit of one request to a gateway.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a push says about its event.
#[derive(Debug)]
pub struct EventSummary {
    /// The event.
    pub event_id: OwnedEventId,
    /// Its room.
    pub room_id: OwnedRoomId,
    /// Its type.
    pub kind: String,
    /// Its sender.
    pub sender: OwnedUserId,
    /// The sender's display name in the room.
    pub sender_display_name: Option<String>,
    /// The room's name.
    pub room_name: Option<String>,
    /// The room's canonical alias.
    pub room_alias: Option<String>,
    /// Its state key, for member events (`user_is_target`).
    pub state_key: Option<String>,
    /// Its content.
    pub content: Value,
}

/// One notification for one user.
#[derive(Debug)]
pub struct PushJob {
    /// The user notified.
    pub user: OwnedUserId,
    /// The event.
    pub event: Arc<EventSummary>,
    /// The actions of the rule that matched (tweaks).
    pub actions: Vec<Action>,
    /// The user's pushers.
    pub pushers: Vec<StoredPusher>,
}

/// The HTTP side of pushers.
pub struct Gateway {
    http: reqwest::Client,
    permits: Arc<Semaphore>,
}

/// The tweaks of a rule's actions, as the gateway receives them.
pub fn tweaks(actions: &[Action]) -> Map<String, Value> {
    let mut tweaks = Map::new();
    for action in actions {
        if let Action::SetTweak(tweak) = action {
            let value = tweak
                .value()
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .unwrap_or(Value::Bool(true));
            tweaks.insert(tweak.set_tweak().to_owned(), value);
        }
    }
    tweaks
}

/// The body of `POST /_matrix/push/v1/notify` for one pusher.
pub fn notify_body(job: &PushJob, pusher: &StoredPusher, unread: u64) -> Value {
    let event = &job.event;
    let tweaks = tweaks(&job.actions);
    // As Synapse does: high priority when the device may alert (sound, highlight) or cannot know
    // yet (encrypted), low otherwise, to spare batteries.
    let high = highlights(&job.actions)
        || tweaks.contains_key("sound")
        || event.kind == "m.room.encrypted";
    let (data, event_id_only) = match &pusher.pusher.kind {
        PusherKind::Http(http) => {
            let mut data = serde_json::to_value(http).unwrap_or_else(|_| json!({}));
            if let Some(object) = data.as_object_mut() {
                object.remove("url");
            }
            (data, matches!(http.format, Some(PushFormat::EventIdOnly)))
        }
        _ => (json!({}), false),
    };
    let device = json!({
        "app_id": pusher.pusher.ids.app_id,
        "pushkey": pusher.pusher.ids.pushkey,
        "pushkey_ts": pusher.pushkey_ts,
        "data": data,
        "tweaks": tweaks,
    });
    let mut notification = json!({
        "event_id": event.event_id,
        "room_id": event.room_id,
        "prio": if high { "high" } else { "low" },
        "counts": {},
        "devices": [device],
    });
    if unread > 0 {
        notification["counts"]["unread"] = unread.into();
    }
    if !event_id_only {
        notification["type"] = event.kind.clone().into();
        notification["sender"] = event.sender.as_str().into();
        notification["content"] = event.content.clone();
        notification["user_is_target"] =
            (event.state_key.as_deref() == Some(job.user.as_str())).into();
        for (key, value) in [
            ("sender_display_name", &event.sender_display_name),
            ("room_name", &event.room_name),
            ("room_alias", &event.room_alias),
        ] {
            if let Some(value) = value {
                notification[key] = value.as_str().into();
            }
        }
    }
    json!({ "notification": notification })
}

/// How one attempt ended.
enum Attempt {
    /// The gateway took it; these pushkeys are rejected.
    Delivered(Vec<String>),
    /// Worth retrying.
    Retry(String),
    /// Not worth retrying.
    Fail(String),
}

#[derive(Deserialize)]
struct NotifyResponse {
    #[serde(default)]
    rejected: Vec<String>,
}

impl Gateway {
    /// Builds the HTTP client (no redirects: a gateway URL is used as given).
    pub fn new() -> Result<Self, PushError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relais/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PushError::HttpClient(e.to_string()))?;
        Ok(Self { http, permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)) })
    }

    /// Starts delivering `job` in the background. Outside a Tokio runtime (unit tests) nothing
    /// is sent.
    pub fn enqueue(&self, job: PushJob, pushers: Arc<Pushers>, counts: Arc<Counts>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(user = %job.user, "no runtime: push not delivered");
            return;
        };
        let http = self.http.clone();
        let permits = self.permits.clone();
        runtime.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else { return };
            let unread = match counts.rooms_with_unread(&job.user) {
                Ok(unread) => unread,
                Err(error) => {
                    tracing::warn!(%error, "cannot count unread rooms for a push");
                    0
                }
            };
            for pusher in &job.pushers {
                deliver(&http, &pushers, &job, pusher, unread).await;
            }
        });
    }
}

/// Posts one notification to one pusher, with retries; removes the pusher if rejected.
async fn deliver(
    http: &reqwest::Client,
    pushers: &Pushers,
    job: &PushJob,
    pusher: &StoredPusher,
    unread: u64,
) {
    let PusherKind::Http(data) = &pusher.pusher.kind else { return };
    let body = notify_body(job, pusher, unread);
    let mut wait = FIRST_RETRY;
    for attempt in 1..=MAX_ATTEMPTS {
        match post(http, &data.url, &body).await {
            Attempt::Delivered(rejected) => {
                if rejected.contains(&pusher.pusher.ids.pushkey) {
                    remove_rejected(pushers, &job.user, pusher);
                }
                return;
            }
            Attempt::Fail(reason) => {
                tracing::warn!(url = %data.url, %reason, "push gateway refused a notification");
                return;
            }
            Attempt::Retry(reason) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(url = %data.url, %reason, attempt, "push failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Attempt::Retry(reason) => {
                tracing::warn!(url = %data.url, %reason, "push failed; giving up");
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Attempt {
    let response = match http.post(url).json(body).send().await {
        Ok(response) => response,
        Err(e) => return Attempt::Retry(e.to_string()),
    };
    let status = response.status();
    if status.is_success() {
        // A gateway that answers 200 without a valid body still took the notification.
        let rejected =
            response.json::<NotifyResponse>().await.map(|r| r.rejected).unwrap_or_default();
        Attempt::Delivered(rejected)
    } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Attempt::Retry(format!("status {status}"))
    } else {
        Attempt::Fail(format!("status {status}"))
    }
}

fn remove_rejected(pushers: &Pushers, user: &UserId, pusher: &StoredPusher) {
    tracing::info!(%user, app_id = %pusher.pusher.ids.app_id, "push gateway rejected a pushkey; removing its pusher");
    if let Err(error) = pushers.delete(user, &pusher.pusher.ids) {
        tracing::error!(%error, "cannot remove a rejected pusher");
    }
}

#[cfg(test)]
mod tests {
    use ruma::{
        api::client::push::{PusherIds, PusherInit},
        owned_event_id, owned_room_id, owned_user_id,
        push::{HttpPusherData, SoundTweakValue, Tweak},
    };

    use super::*;

    fn job() -> PushJob {
        PushJob {
            user: owned_user_id!("@alice:x"),
            event: Arc::new(EventSummary {
                event_id: owned_event_id!("$e"),
                room_id: owned_room_id!("!r:x"),
                kind: "m.room.message".into(),
                sender: owned_user_id!("@bob:x"),
                sender_display_name: Some("Bob".into()),
                room_name: None,
                room_alias: Some("#r:x".into()),
                state_key: None,
                content: json!({ "msgtype": "m.text", "body": "hi" }),
            }),
            actions: vec![Action::Notify, Action::SetTweak(Tweak::Sound(SoundTweakValue::Default))],
            pushers: vec![],
        }
    }

    fn pusher(format: Option<PushFormat>) -> StoredPusher {
        let mut data = HttpPusherData::new("https://gw/_matrix/push/v1/notify".into());
        data.format = format;
        data.data.insert("custom".into(), json!(1));
        let pusher = PusherInit {
            ids: PusherIds::new("key".into(), "app".into()),
            kind: PusherKind::Http(data),
            app_display_name: "App".into(),
            device_display_name: "Phone".into(),
            profile_tag: None,
            lang: "en".into(),
        }
        .into();
        StoredPusher { pusher, device_id: None, pushkey_ts: 7 }
    }

    #[test]
    fn full_notification_follows_the_spec() {
        let body = notify_body(&job(), &pusher(None), 3);
        assert_eq!(
            body,
            json!({ "notification": {
                "event_id": "$e", "room_id": "!r:x", "type": "m.room.message", "sender": "@bob:x",
                "sender_display_name": "Bob", "room_alias": "#r:x", "user_is_target": false,
                "prio": "high", "content": { "msgtype": "m.text", "body": "hi" },
                "counts": { "unread": 3 },
                "devices": [{
                    "app_id": "app", "pushkey": "key", "pushkey_ts": 7,
                    "data": { "custom": 1 }, "tweaks": { "sound": "default" },
                }],
            }}),
        );
    }

    #[test]
    fn event_id_only_sends_no_content() {
        let body = notify_body(&job(), &pusher(Some(PushFormat::EventIdOnly)), 0);
        let notification = body["notification"].as_object().unwrap();
        assert!(!notification.contains_key("content") && !notification.contains_key("sender"));
        assert_eq!(body["notification"]["counts"], json!({}));
        assert_eq!(body["notification"]["devices"][0]["data"]["format"], "event_id_only");
    }
}
