//! Security questions: normalising and hashing answers, picking which ones a sign-in asks, and setting a user's answers.
//!
//! Answers are weak secrets (a mother's maiden name is often public), so the method is off
//! by default and the settings page says so. What Tessera can do it does: answers are
//! compared after normalisation (so "  New  York" and "new york" match), stored only as
//! argon2id hashes like PINs and passwords, checked with argon2 verify (constant time in the
//! answer), and every sign-in attempt takes one try from the per-user code budget
//! (`mfa::lockout`) before it is checked.
//!
//! The self-service portal sets answers through [`set_answers`]: it validates the questions
//! against the admin's list and the answers' size, hashes them and replaces the user's
//! previous answers in one registration update.

use serde::{Deserialize, Serialize};

use super::registration;
use super::secrets::random_bytes;
use super::settings::MfaSettings;
use crate::store::{Store, StoreError};

/// Most questions an admin may offer.
pub const MAX_QUESTIONS: usize = 20;
/// Longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 200;
/// Longest answer, in characters (after normalisation; at least one).
pub const MAX_ANSWER_CHARS: usize = 200;

/// One of the user's answers: the question as offered when it was set, and the argon2id
/// hash of the normalised answer (never the answer).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityAnswer {
    pub question: String,
    pub hash: String,
}

impl std::fmt::Debug for SecurityAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash of a short answer is guessable offline: keep it out of logs.
        f.debug_struct("SecurityAnswer")
            .field("question", &self.question)
            .field("hash", &"<redacted>")
            .finish()
    }
}

/// The form answers are compared in: Unicode lower case, trimmed, inner runs of whitespace
/// as one space. (Rust's `to_lowercase` is the full Unicode lower-case mapping; it differs
/// from case folding only for a few letters such as "ß", which it keeps.)
pub fn normalize(answer: &str) -> String {
    answer
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The argon2id hash of a normalised answer.
pub fn hash(answer: &str) -> Result<String, String> {
    crate::directory::file::hash_password(&normalize(answer))
}

/// Whether `answer` matches `hash` after normalisation; false for an oversized answer
/// (never hashed: argon2 over megabytes would be a cheap way to burn CPU).
pub fn verify(hash: &str, answer: &str) -> bool {
    let n = normalize(answer);
    n.chars().count() <= MAX_ANSWER_CHARS
        && !n.is_empty()
        && crate::directory::file::verify_password(hash, &n)
}

/// The user's answers to questions the admin still offers: only these are asked.
pub fn usable<'a>(answers: &'a [SecurityAnswer], mfa: &MfaSettings) -> Vec<&'a SecurityAnswer> {
    answers
        .iter()
        .filter(|a| mfa.security_questions.contains(&a.question))
        .collect()
}

/// Picks `n` distinct indices out of `0..total` at random (a partial Fisher–Yates shuffle
/// driven by `random`, which returns a uniformly random `u32`), in the order picked.
pub fn pick_with(total: usize, n: usize, mut random: impl FnMut() -> u32) -> Vec<usize> {
    let mut all: Vec<usize> = (0..total).collect();
    let n = n.min(total);
    for i in 0..n {
        let span = (total - i) as u64;
        // Rejection sampling keeps each choice uniform (no modulo bias).
        let limit = (u64::from(u32::MAX) + 1) / span * span;
        let r = loop {
            let r = u64::from(random());
            if r < limit {
                break r;
            }
        };
        let j = i + (r % span) as usize;
        all.swap(i, j);
    }
    all.truncate(n);
    all
}

/// The questions a sign-in asks: `mfa.questions_required` of the user's usable answers,
/// chosen at random each time (so a shoulder-surfer of one sign-in does not learn all).
pub fn pick(answers: &[SecurityAnswer], mfa: &MfaSettings) -> Vec<String> {
    let usable = usable(answers, mfa);
    pick_with(usable.len(), mfa.questions_required as usize, || {
        u32::from_le_bytes(random_bytes::<4>())
    })
    .into_iter()
    .map(|i| usable[i].question.clone())
    .collect()
}

/// Whether every asked question got its right answer. All are checked, whatever the first
/// says, so the time taken does not tell which one was wrong.
pub fn all_correct(answers: &[SecurityAnswer], asked: &[String], given: &[String]) -> bool {
    if asked.is_empty() || given.len() != asked.len() {
        return false;
    }
    let mut ok = true;
    for (q, a) in asked.iter().zip(given) {
        let right = answers
            .iter()
            .find(|s| &s.question == q)
            .is_some_and(|s| verify(&s.hash, a));
        ok &= right;
    }
    ok
}

/// Why a set of answers is refused; `message` is for the user or admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    SwitchedOff,
    UnknownQuestion,
    SameQuestionTwice,
    TooFew { needed: u32 },
    EmptyAnswer,
    AnswerTooLong,
}

impl Refusal {
    /// The English message id, translated on pages (`locales/*.toml`); `{needed}` is the
    /// number of answers the policy asks for (`questions_setup`).
    pub fn msgid(&self) -> &'static str {
        match self {
            Refusal::SwitchedOff => "Security questions are switched off.",
            Refusal::UnknownQuestion => "That question is not one of those offered.",
            Refusal::SameQuestionTwice => "Each question can be answered only once.",
            Refusal::TooFew { .. } => "Answer at least {needed} questions.",
            Refusal::EmptyAnswer => "An answer cannot be empty.",
            Refusal::AnswerTooLong => "An answer can have at most 200 characters.",
        }
    }

    /// The message in English with `{needed}` filled in (the CLI and logs).
    pub fn message(&self) -> String {
        let needed = match self {
            Refusal::TooFew { needed } => needed.to_string(),
            _ => String::new(),
        };
        crate::i18n::fill(self.msgid(), &[("needed", &needed)])
    }
}

/// Why [`set_answers`] did not store anything.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error("{}", .0.message())]
    Refused(Refusal),
    #[error("could not hash an answer: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a set of (question, answer) pairs against the policy without storing anything.
pub fn check(mfa: &MfaSettings, answers: &[(String, String)]) -> Result<(), Refusal> {
    if !mfa.methods.contains(&super::Method::Questions) {
        return Err(Refusal::SwitchedOff);
    }
    for (i, (q, a)) in answers.iter().enumerate() {
        if !mfa.security_questions.contains(q) {
            return Err(Refusal::UnknownQuestion);
        }
        if answers[..i].iter().any(|(p, _)| p == q) {
            return Err(Refusal::SameQuestionTwice);
        }
        let n = normalize(a);
        if n.is_empty() {
            return Err(Refusal::EmptyAnswer);
        }
        if n.chars().count() > MAX_ANSWER_CHARS {
            return Err(Refusal::AnswerTooLong);
        }
    }
    if answers.len() < mfa.questions_setup as usize {
        return Err(Refusal::TooFew {
            needed: mfa.questions_setup,
        });
    }
    Ok(())
}

/// Sets `username`'s security answers, replacing any earlier ones: the one call for every
/// place answers are set (the CLI, the self-service portal). `answers` are (question as
/// offered in `mfa.security_questions`, answer as typed) pairs; the call checks them with
/// [`check`], hashes the normalised answers and stores them in one registration update.
/// Returns the questions stored. Answers never leave this function in clear.
pub async fn set_answers(
    store: &dyn Store,
    mfa: &MfaSettings,
    username: &str,
    answers: &[(String, String)],
    now: i64,
) -> Result<Vec<String>, SetError> {
    check(mfa, answers).map_err(SetError::Refused)?;
    let mut hashed = Vec::with_capacity(answers.len());
    for (q, a) in answers {
        hashed.push(SecurityAnswer {
            question: q.clone(),
            hash: hash(a).map_err(SetError::Hash)?,
        });
    }
    let questions = hashed.iter().map(|a| a.question.clone()).collect();
    registration::update(store, username, |r| {
        r.security_answers = hashed.clone();
        r.security_answers_set_at = Some(now);
    })
    .await?;
    Ok(questions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::Method;

    fn policy() -> MfaSettings {
        let mut m = MfaSettings {
            security_questions: vec!["Q1".into(), "Q2".into(), "Q3".into()],
            questions_required: 2,
            questions_setup: 2,
            ..MfaSettings::default()
        };
        m.methods.push(Method::Questions);
        m
    }

    #[test]
    fn normalisation_folds_case_and_spaces() {
        assert_eq!(normalize("  New   York\t"), "new york");
        assert_eq!(normalize("ÉCOLE  Élémentaire"), "école élémentaire");
        assert_eq!(normalize("ΣΊΣΥΦΟΣ"), "σίσυφος");
        assert_eq!(normalize(" \n "), "");
    }

    #[test]
    fn hashes_verify_normalised_answers_only() {
        let h = hash("Fluffy  the Cat").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("fluffy"));
        assert!(verify(&h, "fluffy the cat"));
        assert!(verify(&h, "  FLUFFY THE   CAT "));
        assert!(!verify(&h, "fluffy"));
        assert!(!verify(&h, &"x".repeat(10_000)));
        assert!(!verify("not a hash", "fluffy the cat"));
    }

    #[test]
    fn the_pick_is_distinct_bounded_and_covers_every_question() {
        let mut seen = [0u32; 5];
        let mut counter = 0u32;
        for _ in 0..200 {
            let picked = pick_with(5, 3, || {
                counter = counter.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                counter
            });
            assert_eq!(picked.len(), 3);
            let mut d = picked.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), 3, "distinct: {picked:?}");
            for i in picked {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
        assert_eq!(pick_with(2, 5, || 7).len(), 2, "never more than there are");
        assert!(pick_with(0, 2, || 7).is_empty());
    }

    #[test]
    fn a_pick_asks_only_questions_still_offered() {
        let m = policy();
        let answers: Vec<SecurityAnswer> = ["Q1", "Q2", "Old"]
            .iter()
            .map(|q| SecurityAnswer {
                question: (*q).into(),
                hash: String::new(),
            })
            .collect();
        for _ in 0..20 {
            let asked = pick(&answers, &m);
            assert_eq!(asked.len(), 2);
            assert!(!asked.contains(&"Old".to_owned()));
        }
    }

    #[test]
    fn all_answers_must_be_right() {
        let answers = vec![
            SecurityAnswer {
                question: "Q1".into(),
                hash: hash("blue").unwrap(),
            },
            SecurityAnswer {
                question: "Q2".into(),
                hash: hash("rex").unwrap(),
            },
        ];
        let asked = vec!["Q2".to_owned(), "Q1".to_owned()];
        assert!(all_correct(
            &answers,
            &asked,
            &["Rex".into(), "BLUE".into()]
        ));
        assert!(!all_correct(
            &answers,
            &asked,
            &["rex".into(), "red".into()]
        ));
        assert!(!all_correct(&answers, &asked, &["rex".into()]));
        assert!(!all_correct(&answers, &[], &[]));
    }

    #[test]
    fn answers_are_checked_before_storing() {
        let m = policy();
        let pair = |q: &str, a: &str| (q.to_owned(), a.to_owned());
        assert_eq!(check(&m, &[pair("Q1", "a"), pair("Q2", "b")]), Ok(()));
        assert_eq!(
            check(&m, &[pair("Q1", "a")]),
            Err(Refusal::TooFew { needed: 2 })
        );
        assert_eq!(
            check(&m, &[pair("Q1", "a"), pair("Q9", "b")]),
            Err(Refusal::UnknownQuestion)
        );
        assert_eq!(
            check(&m, &[pair("Q1", "a"), pair("Q1", "b")]),
            Err(Refusal::SameQuestionTwice)
        );
        assert_eq!(
            check(&m, &[pair("Q1", "  "), pair("Q2", "b")]),
            Err(Refusal::EmptyAnswer)
        );
        let long = "x".repeat(201);
        assert_eq!(
            check(&m, &[pair("Q1", &long), pair("Q2", "b")]),
            Err(Refusal::AnswerTooLong)
        );
        let off = MfaSettings {
            security_questions: m.security_questions.clone(),
            ..MfaSettings::default()
        };
        assert_eq!(
            check(&off, &[pair("Q1", "a"), pair("Q2", "b")]),
            Err(Refusal::SwitchedOff)
        );
    }
}
