//! `PUT /_matrix/federation/v1/send/{txnId}`: a transaction of PDUs and EDUs from another server.
//!
//! A transaction already processed (same origin and ID: the sender retries until it gets an
//! answer) is answered again without processing, so to-device messages are not delivered twice.
//! PDUs are processed one after the other, in the order sent; each gets its own result.

use std::{collections::BTreeMap, sync::Arc};

use ruma::api::federation::transactions::send_transaction_message;

use crate::{
    api::{
        error::{ApiError, ApiResult},
        ruma::Ruma,
    },
    service::{Services, federation::edu::handle_edu, rooms::remote::Accepted},
};

/// The spec's limits per transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

/// `PUT /_matrix/federation/v1/send/{txnId}`
pub async fn send_transaction(
    services: Arc<Services>,
    req: Ruma<send_transaction_message::v1::Request>,
) -> ApiResult<send_transaction_message::v1::Response> {
    let origin = req.auth.clone();
    let body = req.body;
    if body.pdus.len() > MAX_PDUS || body.edus.len() > MAX_EDUS {
        return Err(ApiError::BadJson(format!(
            "a transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )));
    }
    if body.origin != origin {
        return Err(ApiError::Forbidden(format!(
            "the transaction's origin {} is not the signing server {origin}",
            body.origin
        )));
    }
    if services.federation_transactions.seen(&origin, &body.transaction_id)? {
        return Ok(send_transaction_message::v1::Response::new(BTreeMap::new()));
    }
    let mut results = BTreeMap::new();
    for pdu in &body.pdus {
        match services.handle_incoming_pdu(&origin, pdu).await {
            Ok((event_id, Accepted::Stored(_) | Accepted::AlreadyKnown | Accepted::SoftFailed)) => {
                results.insert(event_id, Ok(()));
            }
            Err((event_id, error)) => {
                tracing::info!(%origin, ?event_id, %error, "a PDU was refused");
                if let Some(event_id) = event_id {
                    results.insert(event_id, Err(error.to_string()));
                }
            }
        }
    }
    for edu in body.edus {
        match edu.deserialize() {
            Ok(edu) => handle_edu(&services, &origin, edu).await,
            Err(e) => tracing::debug!(%origin, error = %e, "an EDU of an unknown form was dropped"),
        }
    }
    services.federation_transactions.mark(&origin, &body.transaction_id)?;
    Ok(send_transaction_message::v1::Response::new(results))
}
