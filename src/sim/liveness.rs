//! Which pushes on the dev phone still have a sign-in waiting for them; the others show as expired.
//!
//! A push's buttons carry Tessera's signed callback URLs (`/mfa/callback/<token>`, see
//! `mfa::challenge::TokenSigner`). The token names the challenge; the challenge in the store
//! says whether anything still waits: it must be pending and before its deadline. A real
//! ntfy app cannot know this; the simulator can, and greying such pushes out tells a
//! developer at once that pressing them will do nothing.

use std::sync::Arc;

use super::inbox::SimPush;
use crate::clock::Clock;
use crate::mfa::challenge::{self, TokenSigner};
use crate::store::Store;

/// Reads the challenges behind pushes (the same store, clock and callback key as the app).
pub struct Liveness {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub tokens: TokenSigner,
}

impl Liveness {
    /// Whether `push` belongs to a challenge nobody waits for any more: answered, abandoned,
    /// past its deadline or gone from the store. A push without a callback URL we signed
    /// (someone else's notification) is never expired; a store that cannot be read leaves
    /// the push as it is (and says so in the log).
    pub async fn expired(&self, push: &SimPush) -> bool {
        let Some(id) = push
            .actions
            .iter()
            .find_map(|a| challenge_id(&self.tokens, &a.url))
        else {
            return false;
        };
        match challenge::load(self.store.as_ref(), &id).await {
            Ok(Some(c)) => !c.awaited(self.clock.unix()),
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "dev phone: cannot read a push's challenge");
                false
            }
        }
    }
}

/// The challenge id in a callback URL `…/mfa/callback/<token>[?…]`, when the token's MAC is
/// ours (so a forged notification cannot make us read arbitrary records).
fn challenge_id(tokens: &TokenSigner, url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let (_, token) = path.rsplit_once("/mfa/callback/")?;
    tokens.verify(token).map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::challenge::Action;

    #[test]
    fn only_our_signed_callback_urls_name_a_challenge() {
        let tokens = TokenSigner::new(b"k");
        let t = tokens.token("c1", Action::Approve);
        let url = format!("https://idp.example/mfa/callback/{t}?n=42");
        assert_eq!(challenge_id(&tokens, &url), Some("c1".into()));
        assert_eq!(challenge_id(&TokenSigner::new(b"other"), &url), None);
        assert_eq!(challenge_id(&tokens, "https://idp.example/elsewhere"), None);
        assert_eq!(
            challenge_id(&tokens, "https://idp.example/mfa/callback/c1.approve.00"),
            None
        );
    }
}
