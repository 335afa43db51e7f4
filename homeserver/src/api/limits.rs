//! Limit refusals as API errors: rate limits (`429 M_LIMIT_EXCEEDED` with `retry_after_ms`) and
//! items per request (`400 M_INVALID_PARAM`).

use super::error::ApiError;
use crate::service::rate_limit::Limited;

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::LimitExceeded { retry_after_ms: limited.retry_after_ms }
    }
}

/// Refuses a request with more than `limit` items of a list (400 `M_INVALID_PARAM`), naming the
/// configuration key `key` that sets the limit.
pub fn at_most(count: usize, limit: usize, what: &str, key: &str) -> Result<(), ApiError> {
    if count > limit {
        return Err(ApiError::InvalidParam(format!(
            "{what}: {count} given; the limit is {limit} (limits.{key})"
        )));
    }
    Ok(())
}
