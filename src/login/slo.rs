//! Single-logout runs: the state of one front-channel logout (SAML profiles §4.4.3), kept in
//! the store while the browser visits each session participant in turn.
//!
//! A run starts when an SSO session ends (an SP's LogoutRequest, the sign-out page, or
//! WS-Federation `wsignout1.0`). The session itself is deleted at once; the run keeps what
//! the participants must be told (their NameID, the session index) and what they answered.
//! It lives under `slo:<sha256 of the run cookie>` with a TTL and is saved compare-and-set,
//! like a login flow, so a replayed or doubled answer cannot advance it twice.

use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use serde::{Deserialize, Serialize};

use crate::rp::Protocol;
use crate::store::{Store, StoreError};

use super::session::{Participant, SsoSession};

/// The cookie that ties a browser to its run while it travels between the SPs.
pub const COOKIE: &str = "tessera_slo";
/// At most this many participants are signed out in one run; more are reported as failed.
/// Every run also ends the session it came from, so one session yields at most one run.
pub const MAX_PARTICIPANTS: usize = 32;
/// How long the run waits for an SP's answer (renewed at every step). An SP that never
/// answers leaves the browser with it; the run then expires and the initiator gets no
/// LogoutResponse (the IdP session is already gone).
pub const TTL: Duration = Duration::from_secs(300);
/// The store log (`Store::append`) of logout audit events: one per logout, and one per
/// LogoutRequest refused for naming another session.
pub const LOG: &str = "logout";
/// What a finished run's record is replaced by (briefly), so a second finish loses the race.
const DONE: &[u8] = b"done";

/// Who asked for the logout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Initiator {
    /// An SP's LogoutRequest: it gets the LogoutResponse at the end.
    Sp {
        rp: String,
        request_id: String,
        relay_state: Option<String>,
    },
    /// The user on our sign-out page, or a WS-Fed `wsignout1.0` (with its registered
    /// `wreply`, if any, to go to at the end).
    User { reply: Option<String> },
}

/// The LogoutRequest the browser is carrying to an SP now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    pub rp: String,
    pub request_id: String,
}

/// Why a participant is not known to be signed out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// It has no single logout endpoint (or is no longer registered).
    NoEndpoint,
    /// It answered with a status other than Success.
    Refused,
    /// Its answer could not be trusted (signature, Issuer, Destination, age).
    Unverified,
    /// Beyond `MAX_PARTICIPANTS`.
    TooMany,
    /// We could not sign the LogoutRequest.
    NotSent,
}

/// How one participant came out of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    pub rp: String,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Run {
    /// The cookie value; the store holds its hash only.
    #[serde(skip)]
    pub id: String,
    pub user: String,
    pub session_index: String,
    pub initiator: Initiator,
    /// SAML participants still to be sent a LogoutRequest, in sign-in order.
    pub queue: Vec<Participant>,
    pub waiting: Option<Waiting>,
    pub outcomes: Vec<Outcome>,
    /// WS-Fed participants (realms): they get `wsignoutcleanup1.0` on the last page.
    pub cleanup: Vec<String>,
    /// The cleanup page was shown already (an SP-initiated run shows it before the answer).
    #[serde(default)]
    pub cleanup_shown: bool,
}

impl Run {
    /// A run for the ended session `s`: every participant except the initiating SP, SAML ones
    /// queued for a LogoutRequest, WS-Fed ones for cleanup, at most `MAX_PARTICIPANTS`.
    pub fn start(s: &SsoSession, initiator: Initiator) -> Run {
        let skip = match &initiator {
            Initiator::Sp { rp, .. } => Some(rp.clone()),
            Initiator::User { .. } => None,
        };
        let mut run = Run {
            id: crate::saml::random_hex(16),
            user: s.user.username.clone(),
            session_index: s.session_index.clone(),
            initiator,
            queue: Vec::new(),
            waiting: None,
            outcomes: Vec::new(),
            cleanup: Vec::new(),
            cleanup_shown: false,
        };
        let others = s
            .participants
            .iter()
            .filter(|p| Some(&p.rp) != skip.as_ref());
        for (i, p) in others.enumerate() {
            if i >= MAX_PARTICIPANTS {
                run.fail(&p.rp, Failure::TooMany);
            } else if p.protocol == Protocol::Wsfed {
                run.cleanup.push(p.rp.clone());
            } else {
                run.queue.push(p.clone());
            }
        }
        run
    }

    pub fn fail(&mut self, rp: &str, failure: Failure) {
        self.outcomes.push(Outcome {
            rp: rp.to_owned(),
            failure: Some(failure),
        });
    }

    /// Records the answer to the request we are waiting for.
    pub fn answered(&mut self, failure: Option<Failure>) {
        if let Some(w) = self.waiting.take() {
            self.outcomes.push(Outcome { rp: w.rp, failure });
        }
    }

    /// The participants not known to be signed out.
    pub fn failed(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|o| o.failure.is_some())
            .map(|o| o.rp.as_str())
            .collect()
    }

    /// The participants that answered Success.
    pub fn succeeded(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|o| o.failure.is_none())
            .map(|o| o.rp.as_str())
            .collect()
    }
}

/// Why the browser's LogoutRequest does not name this session (SAML core §3.7.3.2:
/// answered with Requester, nothing ended).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the SP received no token in this session")]
    NotParticipant,
    #[error("NameID {0:?} is not the one this SP was given")]
    NameId(String),
    #[error("NameID Format {0:?} is not the one this SP was given")]
    Format(String),
    #[error("SessionIndex {0:?} does not name this session")]
    SessionIndex(Vec<String>),
}

/// Does a LogoutRequest from `rp` naming `name_id` (`format`, `session_indexes`) name this
/// session? The NameID must be the one `rp` was given here; Format and SessionIndex, when
/// present, must match too (SAML core §3.7.1: any listed index names the session).
pub fn names_session(
    s: &SsoSession,
    rp: &str,
    name_id: &str,
    format: Option<&str>,
    session_indexes: &[String],
) -> Result<(), Mismatch> {
    let p = s.participant(rp).ok_or(Mismatch::NotParticipant)?;
    if p.name_id != name_id {
        return Err(Mismatch::NameId(name_id.to_owned()));
    }
    if let Some(f) = format
        && f != p.name_id_format
    {
        return Err(Mismatch::Format(f.to_owned()));
    }
    if !session_indexes.is_empty() && !session_indexes.contains(&s.session_index) {
        return Err(Mismatch::SessionIndex(session_indexes.to_vec()));
    }
    Ok(())
}

/// The sign-out page's CSRF token: an HMAC of the SSO session cookie under `key`, so only a
/// page shown to this browser's session can end it.
pub fn csrf_token(key: &[u8; 32], session_id: &str) -> String {
    PKey::hmac(key)
        .and_then(|k| {
            let mut s = Signer::new(MessageDigest::sha256(), &k)?;
            s.update(b"slo-csrf:")?;
            s.update(session_id.as_bytes())?;
            s.sign_to_vec()
        })
        .map(hex::encode)
        .unwrap_or_default()
}

fn key(id: &str) -> String {
    crate::store::hashed_key("slo", id)
}

/// A live run and its stored bytes (for `save`), or `None` for an unknown, finished or
/// malformed cookie.
pub async fn load(store: &dyn Store, id: &str) -> Result<Option<(Run, Vec<u8>)>, StoreError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let Some(bytes) = store.get(&key(id)).await? else {
        return Ok(None);
    };
    if bytes == DONE {
        return Ok(None);
    }
    let run: Run = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        key: key(id),
        detail: e.to_string(),
    })?;
    Ok(Some((
        Run {
            id: id.to_owned(),
            ..run
        },
        bytes,
    )))
}

/// Saves the run if its record is still `expected` (`None`: a new run) and returns the
/// bytes now stored (the next save's `expected`); `None` when another request changed it
/// first.
pub async fn save(
    store: &dyn Store,
    run: &Run,
    expected: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let bytes = serde_json::to_vec(run).map_err(|e| StoreError::Corrupt {
        key: "slo".into(),
        detail: e.to_string(),
    })?;
    let written = match expected {
        None => {
            store
                .put_if_absent(&key(&run.id), &bytes, Some(TTL))
                .await?
        }
        Some(old) => {
            store
                .compare_and_set(&key(&run.id), Some(old), &bytes, Some(TTL))
                .await?
        }
    };
    Ok(written.then_some(bytes))
}

/// Marks the run finished if its record is still `expected`; `false` when it was already.
pub async fn finish(store: &dyn Store, run: &Run, expected: &[u8]) -> Result<bool, StoreError> {
    store
        .compare_and_set(
            &key(&run.id),
            Some(expected),
            DONE,
            Some(Duration::from_secs(5)),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::UserInfo;
    use crate::login::AuthMethod;
    use crate::login::session;

    fn participant(rp: &str, protocol: Protocol) -> Participant {
        Participant {
            rp: rp.into(),
            protocol,
            name_id: format!("alice@{rp}"),
            name_id_format: "urn:f".into(),
        }
    }

    fn sess(n: usize) -> SsoSession {
        let user = UserInfo {
            username: "alice".into(),
            ..Default::default()
        };
        let mut s = session::start(user, vec![AuthMethod::Password], 1, 1, 60);
        s.remember(participant("init", Protocol::Saml));
        s.remember(participant("ws", Protocol::Wsfed));
        for i in 0..n {
            s.remember(participant(&format!("sp{i}"), Protocol::Saml));
        }
        s
    }

    #[test]
    fn a_run_queues_the_others_and_caps_them() {
        let sp = Initiator::Sp {
            rp: "init".into(),
            request_id: "_r".into(),
            relay_state: None,
        };
        let run = Run::start(&sess(2), sp.clone());
        let queued: Vec<&str> = run.queue.iter().map(|p| p.rp.as_str()).collect();
        assert_eq!(queued, ["sp0", "sp1"], "the initiator is not asked");
        assert_eq!(run.cleanup, ["ws"]);
        let run = Run::start(&sess(2), Initiator::User { reply: None });
        assert_eq!(run.queue.len(), 3, "a user's sign-out asks every SAML SP");

        let big = Run::start(&sess(MAX_PARTICIPANTS + 5), sp);
        assert_eq!(big.queue.len() + big.cleanup.len(), MAX_PARTICIPANTS);
        // The WS-Fed one and MAX + 5 SAML ones are MAX + 6 others.
        assert_eq!(big.failed().len(), 6, "the rest are reported, never sent");
    }

    #[test]
    fn a_logout_request_must_name_this_session() {
        let s = sess(0);
        let ok = |n: &str, f: Option<&str>, i: &[String]| names_session(&s, "init", n, f, i);
        let idx = vec![s.session_index.clone()];
        assert_eq!(ok("alice@init", Some("urn:f"), &idx), Ok(()));
        assert_eq!(ok("alice@init", None, &[]), Ok(()));
        assert!(matches!(
            ok("bob@init", None, &[]),
            Err(Mismatch::NameId(_))
        ));
        assert!(matches!(
            ok("alice@init", Some("urn:other"), &[]),
            Err(Mismatch::Format(_))
        ));
        assert!(matches!(
            ok("alice@init", None, &["_other".into()]),
            Err(Mismatch::SessionIndex(_))
        ));
        assert_eq!(
            names_session(&s, "stranger", "alice@init", None, &[]),
            Err(Mismatch::NotParticipant)
        );
    }

    #[tokio::test]
    async fn a_run_is_saved_compare_and_set_and_finishes_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::embedded::EmbeddedStore::open(
            &dir.path().join("s.redb"),
            std::sync::Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let mut run = Run::start(&sess(1), Initiator::User { reply: None });
        assert!(save(&store, &run, None).await.expect("save").is_some());
        assert!(
            save(&store, &run, None).await.expect("save").is_none(),
            "created once"
        );
        let (loaded, old) = load(&store, &run.id).await.expect("load").expect("live");
        assert_eq!(loaded, run);
        run.waiting = Some(Waiting {
            rp: "sp0".into(),
            request_id: "_q".into(),
        });
        assert!(save(&store, &run, Some(&old)).await.expect("cas").is_some());
        let stale = save(&store, &run, Some(&old)).await.expect("stale");
        assert!(stale.is_none(), "stale loses");
        let (_, now) = load(&store, &run.id).await.expect("load").expect("live");
        assert!(finish(&store, &run, &now).await.expect("finish"));
        assert!(!finish(&store, &run, &now).await.expect("again"));
        assert_eq!(load(&store, &run.id).await.expect("load"), None);
        assert!(
            store
                .keys("slo:")
                .await
                .expect("keys")
                .iter()
                .all(|k| !k.contains(&run.id))
        );
    }
}
