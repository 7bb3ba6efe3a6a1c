//! Where a request goes, by its path: pushes, broadcasts and channel
//! management, which the mock plays on its one listener. A leaf: the
//! dispatcher and the handlers share it.

use http::HeaderMap;

use crate::notification::ApnsId;

/// Where a request goes, by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/3/device/...`, and any path no other route claims (answered
    /// `BadPath` by the push checks).
    Push,
    /// `/4/broadcasts/apps/<bundle>`.
    Broadcast(&'a str),
    /// `/1/apps/<bundle>/channels`: create, read, delete.
    Channel(&'a str),
    /// `/1/apps/<bundle>/all-channels`: list.
    AllChannels(&'a str),
}

impl<'a> Route<'a> {
    pub(crate) fn of(path: &'a str) -> Route<'a> {
        if let Some(bundle) = path.strip_prefix("/4/broadcasts/apps/") {
            return Route::Broadcast(bundle);
        }
        let Some(rest) = path.strip_prefix("/1/apps/") else {
            return Route::Push;
        };
        if let Some(bundle) = rest.strip_suffix("/channels") {
            Route::Channel(bundle)
        } else if let Some(bundle) = rest.strip_suffix("/all-channels") {
            Route::AllChannels(bundle)
        } else {
            Route::Push
        }
    }

    /// Answers carry `apns-request-id` on the broadcast routes, `apns-id`
    /// on pushes.
    pub(crate) fn is_push(self) -> bool {
        self == Route::Push
    }
}

/// The `apns-request-id` of an answer on the broadcast routes: the
/// request's, echoed, or a new one
/// (`docs/apns-facts.md`, "Broadcast": "the response echoes it or carries a server-made one").
pub(crate) fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get("apns-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| ApnsId::parse(v).ok())
        .unwrap_or_else(ApnsId::new_v4)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_by_path() {
        assert_eq!(Route::of("/3/device/abcd"), Route::Push);
        assert_eq!(
            Route::of("/4/broadcasts/apps/com.a"),
            Route::Broadcast("com.a")
        );
        assert_eq!(Route::of("/1/apps/com.a/channels"), Route::Channel("com.a"));
        assert_eq!(
            Route::of("/1/apps/com.a/all-channels"),
            Route::AllChannels("com.a")
        );
        assert_eq!(Route::of("/1/apps/com.a/other"), Route::Push);
        assert_eq!(Route::of("/"), Route::Push);
    }
}
