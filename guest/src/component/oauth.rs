//! The `oauth` export (wired to the flows in the next step).

use super::Component;
use crate::bindings::exports::gateway::auth::oauth as wit;

fn pending() -> wit::OauthError {
    wit::OauthError::Config("not wired yet".into())
}

impl wit::Guest for Component {
    fn request_token(_: wit::Client, _: wit::Grant) -> Result<wit::Token, wit::OauthError> {
        Err(pending())
    }
    fn open_session(_: String, _: wit::Client, _: wit::SessionGrant) -> Result<(), wit::OauthError> {
        Err(pending())
    }
    fn access_token(_: String) -> Result<wit::Token, wit::OauthError> {
        Err(pending())
    }
    fn begin_authorization(_: String) -> Result<wit::Authorization, wit::OauthError> {
        Err(pending())
    }
    fn complete_authorization(_: String, _: String, _: String) -> Result<wit::Token, wit::OauthError> {
        Err(pending())
    }
    fn begin_device_authorization(_: String) -> Result<wit::DeviceAuthorization, wit::OauthError> {
        Err(pending())
    }
    fn poll_device_authorization(_: String) -> Result<Option<wit::Token>, wit::OauthError> {
        Err(pending())
    }
    fn session_status(_: String) -> Option<wit::SessionState> {
        None
    }
    fn revoke(_: String) -> Result<(), wit::OauthError> {
        Err(pending())
    }
    fn close_session(_: String) {}
}
