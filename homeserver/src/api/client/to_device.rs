//! `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3sendtodeviceeventtypetxnid>.
//! Queues the messages in the recipients' device inboxes; `*` means every device of the user.
//! A transaction ID is used once per sending device, so a retried request sends nothing twice.
//! Messages to remote users go to their servers in `m.direct_to_device` EDUs.

use std::sync::Arc;

use ruma::{
    api::{
        client::to_device::send_event_to_device,
        federation::transactions::edu::DirectDeviceMessages,
    },
    to_device::DeviceIdOrAllDevices,
};
use serde_json::Value;

use super::membership::blocking;
use crate::{
    api::{
        error::{ApiError, ApiResult},
        limits,
        ruma::Ruma,
    },
    service::{Services, keys::ToDeviceMessage},
};

/// `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`
pub async fn send(
    services: Arc<Services>,
    req: Ruma<send_event_to_device::v3::Request>,
) -> ApiResult<send_event_to_device::v3::Response> {
    let count = req.body.messages.values().map(|targets| targets.len()).sum();
    let limit = services.config.limits.max_to_device_messages;
    limits::at_most(count, limit, "to-device messages", "max_to_device_messages")?;
    blocking(move || {
        let messages = recipients(&services, &req.body.messages)?;
        let devices: Vec<_> = messages.iter().map(|m| (m.user.clone(), m.device.clone())).collect();
        let sent = services.keys.send_to_device(
            &req.auth.user_id,
            &req.auth.device_id,
            req.body.txn_id.as_str(),
            &req.body.event_type.to_string(),
            messages,
        )?;
        if sent {
            for (user, device) in devices {
                services.appservice_device_event(&user, &device);
            }
            let remote: DirectDeviceMessages = req
                .body
                .messages
                .iter()
                .filter(|(user, _)| user.server_name() != services.globals.server_name)
                .map(|(user, targets)| (user.clone(), targets.clone()))
                .collect();
            if !remote.is_empty() {
                services.federate_to_device(
                    &req.auth.user_id,
                    &req.auth.device_id,
                    req.body.txn_id.as_str(),
                    &req.body.event_type.to_string(),
                    remote,
                );
            }
        }
        Ok(send_event_to_device::v3::Response::new())
    })
    .await
}

/// One message per existing local recipient device (remote users are sent theirs apart).
fn recipients(
    services: &Services,
    messages: &send_event_to_device::v3::Messages,
) -> ApiResult<Vec<ToDeviceMessage>> {
    let mut out = Vec::new();
    for (user, targets) in messages {
        if user.server_name() != services.globals.server_name {
            continue;
        }
        for (target, content) in targets {
            let content: Value = serde_json::from_str(content.json().get())
                .map_err(|e| ApiError::BadJson(format!("invalid to-device content: {e}")))?;
            if !content.is_object() {
                return Err(ApiError::BadJson("to-device content must be a JSON object".into()));
            }
            let devices: Vec<_> = match target {
                DeviceIdOrAllDevices::DeviceId(device) => services
                    .accounts
                    .device(user, device)?
                    .map(|d| d.device_id)
                    .into_iter()
                    .collect(),
                DeviceIdOrAllDevices::AllDevices => {
                    services.accounts.devices(user)?.into_iter().map(|d| d.device_id).collect()
                }
            };
            for device in devices {
                out.push(ToDeviceMessage { user: user.clone(), device, content: content.clone() });
            }
        }
    }
    Ok(out)
}
