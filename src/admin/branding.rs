//! The branding of the sign-in pages (organisation name, logo, accent colour, help-desk line, notice): validated, kept in the Store for every node, changes logged.
//!
//! One small JSON record (`KEY`) is watched like the MFA settings (`store::watch`); the logo's
//! bytes live beside it under a key named by their SHA-256, so the record a node re-reads
//! every second stays small and a logo URL names one image for ever (cacheable).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::changes::{self, Change};
use super::{Actor, AdminError, refused};
use crate::store::watch::Watched;
use crate::store::{Store, StoreError};

/// The branding record; absent means the neutral look of a fresh install.
pub const KEY: &str = "settings:branding";
/// Largest logo accepted, in bytes.
pub const MAX_LOGO: usize = 100 * 1024;
/// Branding changes (uploads included, refused ones too) one admin may make per `WINDOW`.
pub const MAX_CHANGES: i64 = 30;
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Longest organisation name, help-desk line and notice, in characters.
pub const MAX_NAME: usize = 100;
pub const MAX_HELP_DESK: usize = 200;
pub const MAX_NOTICE: usize = 500;
/// WCAG 2.1 §1.4.3 (contrast, minimum): normal text needs 4.5:1; button text is white on the accent.
pub const MIN_CONTRAST: f64 = 4.5;

/// What an admin set; every field empty or `None` is the default look.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    pub org_name: String,
    /// `#rrggbb`, lower case.
    pub accent: Option<String>,
    pub help_desk: String,
    /// Shown on the password page only.
    pub notice: String,
    pub logo: Option<Logo>,
}

/// The logo in force; its bytes are under `logo_key(&stored_as)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logo {
    pub kind: ImageKind,
    pub sha256: String,
    pub len: usize,
    /// Unique to this upload (the hash and a random suffix): a key only the record written
    /// with it names, so it can be dropped once that record is replaced, even when an admin
    /// uploads the same image again at the same moment.
    pub stored_as: String,
}

/// The image formats browsers show that cannot carry script (SVG can, so it is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }
}

impl Logo {
    /// A short version for URLs and ETags.
    pub fn version(&self) -> &str {
        &self.sha256[..16.min(self.sha256.len())]
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} bytes, sha256 {}",
            self.kind.content_type(),
            self.len,
            self.version()
        )
    }
}

/// Where a logo's bytes are kept.
pub fn logo_key(stored_as: &str) -> String {
    format!("branding:logo:{stored_as}")
}

const NOT_AN_IMAGE: &str = "The logo must be a PNG, JPEG, GIF or WebP image, and this file is not one (or it is cut short). SVG is not accepted: it can carry script.";

/// The format of an uploaded image, judged by its bytes (never by the name or the type the
/// browser sent): the format's signature at the start and its end marker, so a file cut
/// short is refused too.
pub fn sniff(bytes: &[u8]) -> Result<ImageKind, String> {
    // PNG §5.2 signature, §11.2.2 IHDR first, §11.2.5 IEND last (its CRC is fixed).
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    const IEND: &[u8] = b"\0\0\0\0IEND\xaeB`\x82";
    let kind = if bytes.starts_with(PNG) && bytes.get(12..16) == Some(b"IHDR") {
        bytes.ends_with(IEND).then_some(ImageKind::Png)
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        // JPEG (ITU T.81 B.1.1.3): SOI … EOI.
        (bytes.len() > 4 && bytes.ends_with(b"\xff\xd9")).then_some(ImageKind::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        // GIF89a §27: the trailer byte 0x3B ends the stream.
        (bytes.len() > 13 && bytes.ends_with(b";")).then_some(ImageKind::Gif)
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        // RIFF: the size field counts every byte after it.
        let size = bytes
            .get(4..8)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(u32::from_le_bytes);
        (size.and_then(|s| usize::try_from(s).ok()) == Some(bytes.len().saturating_sub(8))
            && bytes.len() > 12)
            .then_some(ImageKind::Webp)
    } else {
        None
    };
    kind.ok_or_else(|| NOT_AN_IMAGE.to_owned())
}

/// WCAG 2.1 relative luminance of an sRGB colour.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
}

/// The contrast ratio of white text on `rgb` (WCAG 2.1 "contrast ratio").
pub fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    1.05 / (luminance(rgb) + 0.05)
}

/// The accent as typed: empty is the default, else `#rrggbb` dark enough for white text.
pub fn parse_accent(typed: &str) -> Result<Option<String>, String> {
    let t = typed.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let hex = t
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or("Write the accent colour as # and six hex digits, for example #1f5fa8.")?;
    let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0);
    let ratio = contrast_with_white([channel(0), channel(2), channel(4)]);
    if ratio < MIN_CONTRAST {
        return Err(format!(
            "#{hex} gives only {ratio:.1}:1 contrast with the white text of buttons; at least 4.5:1 is needed so everyone can read it. Choose a darker colour."
        ));
    }
    Ok(Some(format!("#{}", hex.to_ascii_lowercase())))
}

/// A text field as typed: trimmed, at most `max` characters, plain text on one line.
fn plain_text(label: &str, typed: &str, max: usize) -> Result<String, String> {
    let t = typed.trim();
    if t.chars().count() > max {
        return Err(format!("{label} is longer than {max} characters."));
    }
    if t.chars().any(char::is_control) {
        return Err(format!("{label} must be one line of text."));
    }
    if t.contains(['<', '>']) {
        return Err(format!(
            "{label} is plain text: < and > are not allowed (no markup)."
        ));
    }
    Ok(t.to_owned())
}

/// The text fields of the console form, as typed.
#[derive(Debug, Clone, Default)]
pub struct TextEdit {
    pub org_name: String,
    pub accent: String,
    pub help_desk: String,
    pub notice: String,
}

impl TextEdit {
    /// `b` with these values; `Err` names the first field that does not read, with why.
    fn apply(&self, b: &mut Branding) -> Result<(), (&'static str, String)> {
        b.org_name = plain_text("The organisation name", &self.org_name, MAX_NAME)
            .map_err(|e| ("org_name", e))?;
        b.accent = parse_accent(&self.accent).map_err(|e| ("accent", e))?;
        b.help_desk = plain_text("The help-desk line", &self.help_desk, MAX_HELP_DESK)
            .map_err(|e| ("help_desk", e))?;
        b.notice = plain_text("The notice", &self.notice, MAX_NOTICE).map_err(|e| ("notice", e))?;
        Ok(())
    }
}

/// The stored branding (the default when none) and its raw bytes, for compare-and-set.
pub async fn load(store: &dyn Store) -> Result<(Branding, Option<Vec<u8>>), StoreError> {
    let raw = store.get(KEY).await?;
    let branding = match &raw {
        Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
            key: KEY.into(),
            detail: e.to_string(),
        })?,
        None => Branding::default(),
    };
    Ok((branding, raw))
}

/// Counts one branding change by `actor`; refused once they made `MAX_CHANGES` within
/// `WINDOW`. Counted in the store, so the limit holds across nodes.
pub async fn admit(store: &dyn Store, actor: &Actor) -> Result<(), AdminError> {
    let key = crate::store::hashed_key("limit:branding", &actor.name);
    let n = store.incr(&key, 1, Some(WINDOW)).await?;
    if n > MAX_CHANGES {
        tracing::warn!(admin = %actor.name, count = n, "branding change limit reached");
        return refused(format!(
            "You have made {MAX_CHANGES} branding changes within an hour. Wait before making more; nothing was changed."
        ));
    }
    Ok(())
}

/// Why a branding change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// A field does not read (field name, message for the admin); nothing was stored.
    #[error("{0}: {1}")]
    Field(&'static str, String),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl From<StoreError> for EditError {
    fn from(e: StoreError) -> Self {
        EditError::Admin(AdminError::Store(e))
    }
}

/// Sets the text fields and the accent colour. Returns the changes made.
pub async fn set_text(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
    edit: &TextEdit,
) -> Result<Vec<Change>, EditError> {
    let mut probe = Branding::default();
    edit.apply(&mut probe)
        .map_err(|(f, m)| EditError::Field(f, m))?;
    let (changed, _) = update(store, actor, now, |b| {
        // Validated above; the same input reads the same way again.
        let _ = edit.apply(b);
    })
    .await?;
    Ok(changed)
}

/// Stores `bytes` as the logo (checked to be a PNG, JPEG, GIF or WebP of at most
/// `MAX_LOGO` bytes); the previous logo's bytes are dropped.
pub async fn set_logo(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
    bytes: &[u8],
) -> Result<Vec<Change>, AdminError> {
    if bytes.len() > MAX_LOGO {
        return refused(too_large(Some(bytes.len())));
    }
    if bytes.is_empty() {
        return refused("Choose an image file to upload.");
    }
    let kind = sniff(bytes).map_err(AdminError::Refused)?;
    let digest = |e: openssl::error::ErrorStack| StoreError::Backend(e.to_string());
    let sha256 = openssl::hash::hash(openssl::hash::MessageDigest::sha256(), bytes)
        .map(|d| hex::encode(&*d))
        .map_err(digest)?;
    let logo = Logo {
        kind,
        stored_as: format!("{sha256}-{}", crate::saml::random_hex(8)),
        sha256,
        len: bytes.len(),
    };
    store.put(&logo_key(&logo.stored_as), bytes, None).await?;
    let result = update(store, actor, now, |b| b.logo = Some(logo.clone())).await;
    match &result {
        Ok((_, replaced)) => drop_logo(store, replaced.logo.as_ref()).await,
        Err(_) => drop_logo(store, Some(&logo)).await,
    }
    result.map(|(changed, _)| changed)
}

/// Removes the logo.
pub async fn remove_logo(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
) -> Result<Vec<Change>, AdminError> {
    let (changed, replaced) = update(store, actor, now, |b| b.logo = None).await?;
    drop_logo(store, replaced.logo.as_ref()).await;
    Ok(changed)
}

/// The refusal of a logo of `len` bytes (unknown when the upload was cut off).
pub fn too_large(len: Option<usize>) -> String {
    let size = len.map_or_else(String::new, |l| format!(" ({} KiB)", l.div_ceil(1024)));
    format!(
        "The logo is larger than 100 KiB{size}. Make it smaller and upload it again; nothing was changed."
    )
}

/// Deletes the bytes of a logo no record names any more (see `Logo::stored_as`).
async fn drop_logo(store: &dyn Store, logo: Option<&Logo>) {
    if let Some(logo) = logo
        && let Err(e) = store.delete(&logo_key(&logo.stored_as)).await
    {
        // Only space is lost: no record names it.
        tracing::warn!(error = %e, "an unused logo could not be removed from the store");
    }
}

/// The logo's bytes, when the record names one that is stored.
pub async fn logo_bytes(store: &dyn Store, logo: &Logo) -> Result<Option<Vec<u8>>, StoreError> {
    store.get(&logo_key(&logo.stored_as)).await
}

/// Applies `edit` to the stored branding with compare-and-set and logs each changed field.
/// Returns the changes and the branding no record holds any more: the one the write
/// replaced, or, when nothing changed (nothing is written), the edited one.
async fn update(
    store: &dyn Store,
    actor: &Actor,
    now: i64,
    edit: impl Fn(&mut Branding),
) -> Result<(Vec<Change>, Branding), AdminError> {
    for _ in 0..5 {
        let (before, raw) = load(store).await?;
        let mut after = before.clone();
        edit(&mut after);
        let changed = diff(&before, &after)
            .into_iter()
            .map(|(field, old, new)| Change::new(actor, now, "branding.update", field, old, new))
            .collect::<Vec<_>>();
        if changed.is_empty() {
            return Ok((changed, after));
        }
        let bytes = serde_json::to_vec(&after).map_err(|e| StoreError::Corrupt {
            key: KEY.into(),
            detail: e.to_string(),
        })?;
        if store
            .compare_and_set(KEY, raw.as_deref(), &bytes, None)
            .await?
        {
            changes::record(store, now, &changed).await?;
            return Ok((changed, before));
        }
    }
    refused("Someone else changed the branding at the same moment. Check the page and try again.")
}

type FieldChange = (&'static str, Option<String>, Option<String>);

/// The fields that differ, as the change log shows them (`None`: not set).
fn diff(a: &Branding, b: &Branding) -> Vec<FieldChange> {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let pairs = [
        ("org_name", text(&a.org_name), text(&b.org_name)),
        ("accent", a.accent.clone(), b.accent.clone()),
        ("help_desk", text(&a.help_desk), text(&b.help_desk)),
        ("notice", text(&a.notice), text(&b.notice)),
        (
            "logo",
            a.logo.as_ref().map(Logo::describe),
            b.logo.as_ref().map(Logo::describe),
        ),
    ];
    pairs.into_iter().filter(|(_, x, y)| x != y).collect()
}

/// The branding in force on this node, re-read from the store at most once per `REFRESH`.
pub struct LiveBranding {
    watched: Watched<Branding>,
}

impl Default for LiveBranding {
    fn default() -> Self {
        let watched = Watched::new("branding", Branding::default());
        // Branding stored before this node started shows from its first page.
        watched.invalidate();
        LiveBranding { watched }
    }
}

impl LiveBranding {
    /// The branding in force, read from the store when due.
    pub async fn current(&self, store: &dyn Store) -> Arc<Branding> {
        self.watched
            .get(store, KEY, |raw| async move {
                let Some(raw) = raw else {
                    return Ok(Branding::default());
                };
                let b: Branding = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
                // The accent goes into a stylesheet: a record written past `set_text` must
                // not inject CSS.
                if let Some(a) = &b.accent {
                    parse_accent(a)?;
                }
                Ok(b)
            })
            .await
    }

    /// The branding as last read, without reading the store (for code that cannot wait).
    pub fn last(&self) -> Arc<Branding> {
        self.watched.peek()
    }

    /// A change made through this node shows here at once.
    pub fn invalidate(&self) {
        self.watched.invalidate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_1X1: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

    #[test]
    fn images_are_judged_by_their_bytes() {
        assert_eq!(sniff(PNG_1X1), Ok(ImageKind::Png));
        assert!(sniff(&PNG_1X1[..PNG_1X1.len() - 3]).is_err(), "cut short");
        assert!(sniff(&PNG_1X1[..5]).is_err(), "truncated signature");
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0 jfif \xff\xd9"),
            Ok(ImageKind::Jpeg)
        );
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0\0\0\0,;"), Ok(ImageKind::Gif));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8 ".to_vec();
        let size = u32::try_from(webp.len() - 8).unwrap().to_le_bytes();
        webp[4..8].copy_from_slice(&size);
        assert_eq!(sniff(&webp), Ok(ImageKind::Webp));
        for bad in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
            b"<!doctype html><script>alert(1)</script>",
            b"",
            b"\x89PNG",
        ] {
            assert!(sniff(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_accent_must_carry_white_text() {
        assert_eq!(parse_accent(""), Ok(None));
        assert_eq!(parse_accent(" #1F5FA8 "), Ok(Some("#1f5fa8".into())));
        // Our default accent, and black, pass; yellow and light grey do not.
        assert!(contrast_with_white([0x1f, 0x5f, 0xa8]) >= MIN_CONTRAST);
        assert!(parse_accent("#000000").is_ok());
        let e = parse_accent("#ffcc00").unwrap_err();
        assert!(e.contains("1.5:1 contrast") && e.contains("4.5:1"), "{e}");
        assert!(parse_accent("#777777").is_err(), "4.48:1 is not enough");
        assert!(parse_accent("#767676").is_ok(), "4.54:1 is");
        for bad in ["1f5fa8", "#1f5fa", "#1f5fa8;x", "red", "#ggg000"] {
            assert!(
                parse_accent(bad).unwrap_err().contains("six hex digits"),
                "{bad}"
            );
        }
    }

    #[test]
    fn text_fields_are_bounded_plain_lines() {
        let ok = TextEdit {
            org_name: " Contoso R&D ".into(),
            help_desk: "+1 555 0100, help@contoso.example".into(),
            ..Default::default()
        };
        let mut b = Branding::default();
        ok.apply(&mut b).unwrap();
        assert_eq!(b.org_name, "Contoso R&D");
        for (edit, field) in [
            (
                TextEdit {
                    org_name: "x".repeat(MAX_NAME + 1),
                    ..Default::default()
                },
                "org_name",
            ),
            (
                TextEdit {
                    notice: "<b>hi</b>".into(),
                    ..Default::default()
                },
                "notice",
            ),
            (
                TextEdit {
                    help_desk: "a\nb".into(),
                    ..Default::default()
                },
                "help_desk",
            ),
        ] {
            assert_eq!(edit.apply(&mut b).unwrap_err().0, field);
        }
    }

    #[tokio::test]
    async fn a_store_keeps_only_the_logo_in_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::embedded::EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let actor = Actor {
            name: "dave".into(),
            client_ip: "127.0.0.1".into(),
        };
        let keys = async || store.keys("branding:logo:").await.unwrap();
        assert_eq!(set_logo(&store, &actor, 0, PNG_1X1).await.unwrap().len(), 1);
        let first = keys().await;
        assert_eq!(first.len(), 1);
        // The same image again changes nothing and leaves the one copy in force.
        assert!(
            set_logo(&store, &actor, 0, PNG_1X1)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(keys().await, first);
        let gif = b"GIF89a\x01\0\x01\0\0\0\0,;";
        assert_eq!(set_logo(&store, &actor, 0, gif).await.unwrap().len(), 1);
        let second = keys().await;
        assert_eq!(second.len(), 1);
        assert_ne!(second, first, "the replaced logo's bytes are gone");
        let (b, _) = load(&store).await.unwrap();
        let logo = b.logo.expect("logo");
        assert_eq!(logo.kind, ImageKind::Gif);
        assert_eq!(
            logo_bytes(&store, &logo).await.unwrap().as_deref(),
            Some(&gif[..])
        );
        remove_logo(&store, &actor, 0).await.unwrap();
        assert!(keys().await.is_empty());
    }

    #[tokio::test]
    async fn a_record_written_around_the_checks_cannot_inject_css() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::embedded::EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Arc::new(crate::clock::SystemClock),
        )
        .expect("store");
        let live = LiveBranding::default();
        let good = br##"{"org_name":"Contoso","accent":"#0b5394"}"##;
        store.put(KEY, good, None).await.unwrap();
        assert_eq!(
            live.current(&store).await.accent.as_deref(),
            Some("#0b5394")
        );
        let evil = br##"{"org_name":"Evil","accent":"red}body{display:none"}"##;
        store.put(KEY, evil, None).await.unwrap();
        live.invalidate();
        let b = live.current(&store).await;
        assert_eq!(
            (b.org_name.as_str(), b.accent.as_deref()),
            ("Contoso", Some("#0b5394")),
            "the last good branding stays"
        );
        assert_eq!(live.last().org_name, "Contoso");
    }

    #[test]
    fn the_change_log_names_each_changed_field() {
        let a = Branding::default();
        let b = Branding {
            org_name: "Contoso".into(),
            logo: Some(Logo {
                kind: ImageKind::Png,
                sha256: "ab".repeat(32),
                len: 10,
                stored_as: "x".into(),
            }),
            ..Default::default()
        };
        let d = diff(&a, &b);
        assert_eq!(
            d.iter().map(|(f, _, _)| *f).collect::<Vec<_>>(),
            ["org_name", "logo"]
        );
        assert!(
            d[1].2
                .as_deref()
                .unwrap()
                .starts_with("image/png, 10 bytes")
        );
    }
}
