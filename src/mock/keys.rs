//! The keys the mock trusts provider tokens from ([`TrustedKey`]). A
//! leaf: the shared state holds them and the token checks read them.

use crate::auth::{KeyId, PublicKey, TeamId};
use crate::error::Result;
use crate::notification::PushType;
use crate::transport::Environment;

/// A key the mock accepts provider tokens from.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key_id: KeyId,
    team_id: TeamId,
    public_key: PublicKey,
    sec1: Vec<u8>,
    topics: Vec<String>,
    environment: Option<Environment>,
}

impl TrustedKey {
    /// Trusts tokens with `kid = key_id`, `iss = team_id`, signed by
    /// `public_key`'s private half.
    pub fn new(key_id: &str, team_id: &str, public_key: PublicKey) -> Result<Self> {
        Ok(TrustedKey {
            key_id: KeyId::new(key_id)?,
            team_id: TeamId::new(team_id)?,
            sec1: public_key.to_sec1_bytes(),
            public_key,
            topics: Vec::new(),
            environment: None,
        })
    }

    /// Limits the key to these bundle ids (and their push-type suffixes);
    /// other topics get `TopicDisallowed`. Without this, any topic is allowed.
    pub fn topics<I, S>(mut self, bundle_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics = bundle_ids.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the key to one environment, as Apple allows since 2025; tokens
    /// sent to a mock of the other environment get
    /// `BadEnvironmentKeyIdInToken`.
    pub fn environment(mut self, env: Environment) -> Self {
        self.environment = Some(env);
        self
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The key id (`kid`).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The team id (`iss`).
    pub fn team_id(&self) -> &TeamId {
        &self.team_id
    }

    /// The public key as SEC1 bytes, as the verifier takes it.
    pub(crate) fn sec1(&self) -> &[u8] {
        &self.sec1
    }

    /// The one environment the key is limited to, if any.
    pub(crate) fn environment_limit(&self) -> Option<Environment> {
        self.environment
    }

    /// Whether tokens of this key may push to `topic`.
    pub(crate) fn allows_topic(&self, topic: &str) -> bool {
        self.topics.is_empty()
            || self.topics.iter().any(|bundle| {
                topic == bundle
                    || topic.strip_prefix(bundle.as_str()).is_some_and(|suffix| {
                        PushType::ALL
                            .iter()
                            .any(|t| t.topic_suffix() == Some(suffix))
                    })
            })
    }
}
