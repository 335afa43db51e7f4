//! `POST /_matrix/client/v3/user_directory/search`: local users by ID or display name.

use std::sync::Arc;

use ruma::{OwnedMxcUri, api::client::user_directory::search_users};

use crate::{
    api::{error::ApiResult, ruma::Ruma},
    service::{Services, policy_check::UserProfile},
};

/// Searches local, active users whose ID or display name contains the term, less those the
/// policy service hides from the requester.
pub async fn search(
    services: Arc<Services>,
    req: Ruma<search_users::v3::Request>,
) -> ApiResult<search_users::v3::Response> {
    let term = req.body.search_term.to_lowercase();
    let limit = usize::try_from(u64::from(req.body.limit)).unwrap_or(10).clamp(1, 100);
    let mut results = Vec::new();
    let mut limited = false;
    for (user_id, account) in services.accounts.all()? {
        if account.deactivated {
            continue;
        }
        let name_match =
            account.displayname.as_ref().is_some_and(|n| n.to_lowercase().contains(&term));
        if !user_id.as_str().to_lowercase().contains(&term) && !name_match {
            continue;
        }
        if results.len() == limit {
            limited = true;
            break;
        }
        let mut user = search_users::v3::User::new(user_id);
        user.display_name = account.displayname;
        user.avatar_url = account.avatar_url.map(OwnedMxcUri::from);
        results.push(user);
    }
    // The policy service may hide users from this requester (`check_username_for_spam`).
    let results = services
        .policy_checks
        .filter_user_directory(&req.auth.user_id, results, |user| UserProfile {
            user_id: user.user_id.clone(),
            display_name: user.display_name.clone(),
            avatar_url: user.avatar_url.as_ref().map(ToString::to_string),
        })
        .await;
    Ok(search_users::v3::Response::new(results, limited))
}
