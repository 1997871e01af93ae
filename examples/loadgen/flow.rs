//! One SP-initiated login, driven page by page like a browser: whatever page comes back is
//! recognised by its form (password, code, SAMLResponse auto-POST) or by Tessera's push
//! waiting page, so the same driver serves Tessera and SimpleSAMLphp.

use url::Url;

use super::html::{self, Form};
use super::web::{Browser, Page};

/// Redirects followed between two pages.
const MAX_REDIRECTS: usize = 10;
/// Pages submitted in one login before giving up (a loop means a refused step).
const MAX_PAGES: usize = 8;

/// Who signs in; `code` is asked for only when a code page appears.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Where a login ended.
pub enum Reached {
    /// The auto-POST page for the SP's ACS.
    Post {
        action: String,
        saml_response: String,
        relay_state: Option<String>,
    },
    /// Tessera's "We've sent a notification" page (push / call / text waiting).
    Waiting(Page),
}

/// Supplies TOTP codes on demand.
pub trait CodeSource {
    fn code(&self) -> impl std::future::Future<Output = Option<String>> + Send;
}

/// No second factor expected: a code page is an error.
pub struct NoCode;

impl CodeSource for NoCode {
    async fn code(&self) -> Option<String> {
        None
    }
}

/// Starts at `start` (the IdP's SSO URL with the request) and submits forms until the
/// SAMLResponse page or a waiting page appears.
pub async fn drive(
    b: &mut Browser,
    start: Url,
    who: &Credentials<'_>,
    codes: &impl CodeSource,
) -> Result<Reached, String> {
    let mut page = b.get_following(start, MAX_REDIRECTS).await?;
    let (mut password_sent, mut code_sent) = (false, false);
    for _ in 0..MAX_PAGES {
        if !page.status.is_success() {
            return Err(describe("HTTP error", &page));
        }
        if page.body.contains("id=\"waiting\"") {
            return Ok(Reached::Waiting(page));
        }
        let forms = html::forms(&page.body);
        if let Some(f) = forms.iter().find(|f| f.has("SAMLResponse")) {
            return Ok(Reached::Post {
                action: resolve(&page.url, &f.action)?.to_string(),
                saml_response: f.value("SAMLResponse").unwrap_or_default().to_owned(),
                relay_state: f.value("RelayState").map(str::to_owned),
            });
        }
        let (form, fields) = if let Some(f) = forms.iter().find(|f| f.has("password")) {
            if password_sent {
                return Err(describe("password refused", &page));
            }
            password_sent = true;
            let o = [("username", who.username), ("password", who.password)];
            (f, f.submission(&o, None))
        } else if let Some(f) = forms.iter().find(|f| f.has("code")) {
            if code_sent {
                return Err(describe("code refused", &page));
            }
            code_sent = true;
            let code = codes
                .code()
                .await
                .ok_or_else(|| describe("unexpected code page", &page))?;
            (f, f.submission(&[("code", &code)], Some("code")))
        } else {
            return Err(describe("unexpected page", &page));
        };
        page = submit(b, &page.url, form, &fields).await?;
    }
    Err(describe("too many pages", &page))
}

async fn submit(
    b: &mut Browser,
    base: &Url,
    form: &Form,
    fields: &[(String, String)],
) -> Result<Page, String> {
    let target = resolve(base, &form.action)?;
    let page = if form.method == "post" {
        b.post(target, fields).await?
    } else {
        let mut t = target;
        t.query_pairs_mut().clear().extend_pairs(fields);
        b.get(t).await?
    };
    b.follow(page, MAX_REDIRECTS).await
}

/// A form action relative to the page (an empty action is the page itself).
pub fn resolve(base: &Url, action: &str) -> Result<Url, String> {
    if action.is_empty() {
        return Ok(base.clone());
    }
    base.join(action)
        .map_err(|e| format!("form action {action:?}: {e}"))
}

fn describe(what: &str, page: &Page) -> String {
    format!(
        "{what}: HTTP {} at {}: {}",
        page.status.as_u16(),
        page.url.path(),
        html::summary(&page.body)
    )
}
