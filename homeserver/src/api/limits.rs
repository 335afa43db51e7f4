//! Rate-limit refusals as API errors: `429 M_LIMIT_EXCEEDED` with `retry_after_ms`.

use super::error::ApiError;
use crate::service::rate_limit::Limited;

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::LimitExceeded { retry_after_ms: limited.retry_after_ms }
    }
}
