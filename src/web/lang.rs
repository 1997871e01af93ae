//! The language of a sign-in page: negotiated per request (`PageLang`), kept in a cookie when the user picks one, and applied by the templates' `t` filter.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, HtmlEscape, State};

use super::{AppContext, AppState};
use crate::i18n::{self, Asked, Catalogue, Lang, Piece};

/// Keeps the language picked with a page's language links.
pub const COOKIE: &str = "tessera_lang";
/// A pick is a standing preference, not part of a sign-in: keep it about a year.
const COOKIE_DAYS: i64 = 365;
/// More of `Accept-Language` than `i18n::accept_language` reads is never copied.
const HEADER_BYTES: usize = 2048;

/// The language a page is rendered in, and what the page needs to offer the others.
/// `Default`: English, no links (pages outside a sign-in).
#[derive(Debug, Clone, Default)]
pub struct PageLang {
    pub lang: Lang,
    offered: Vec<Lang>,
    /// The user picked `lang` with this request (`?lang=`): the response sets the cookie.
    remember: bool,
    secure: bool,
}

impl PageLang {
    /// The template variables every sign-in page gets: `lang`, and `languages` for the
    /// footer's links (empty when only one language is offered: nothing to choose).
    pub fn context(&self) -> Value {
        let languages: Vec<Value> = if self.offered.len() > 1 {
            self.offered
                .iter()
                .map(|l| {
                    minijinja::context! { code => l.code(), name => l.name(), current => *l == self.lang }
                })
                .collect()
        } else {
            Vec::new()
        };
        minijinja::context! { lang => self.lang.code(), languages => languages }
    }

    /// `res`, with the cookie that keeps the language when the user picked it just now.
    pub fn remembered(&self, mut res: Response) -> Response {
        if !self.remember {
            return res;
        }
        let cookie = Cookie::build((COOKIE, self.lang.code()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::days(COOKIE_DAYS))
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        res
    }
}

impl FromRequestParts<AppState> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(PageLang::negotiate(ctx, &parts.headers, parts.uri.query()).await)
    }
}

impl PageLang {
    /// The language for a request with these headers (the cookie, `Accept-Language`) and
    /// query string (`lang=`); the error pages call it after the handler has run.
    pub async fn negotiate(ctx: &AppContext, headers: &HeaderMap, query: Option<&str>) -> Self {
        let policy = ctx.policy().await;
        let query = query.and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .map(|(_, v)| v.into_owned())
        });
        let jar = CookieJar::from_headers(headers);
        let accept = headers.get(header::ACCEPT_LANGUAGE).map(|v| {
            let bytes = v.as_bytes();
            String::from_utf8_lossy(&bytes[..bytes.len().min(HEADER_BYTES)]).into_owned()
        });
        let n = i18n::negotiate(
            &policy.mfa.languages,
            policy.mfa.default_language,
            Asked {
                query: query.as_deref(),
                cookie: jar.get(COOKIE).map(Cookie::value),
                accept_language: accept.as_deref(),
            },
        );
        PageLang {
            lang: n.lang,
            offered: policy.mfa.languages.clone(),
            remember: n.remember,
            secure: ctx.config.is_https(),
        }
    }
}

/// Registers `t`: `{{ "Sign in"|t }}`, `{{ "Text me at {phone}"|t(phone=o.phone) }}`, and
/// `{{ message|t }}` for a message the login state holds (its English text is the id).
/// The page's `lang` variable picks the language; without one (admin pages) it is English.
pub fn add_filter(env: &mut Environment<'static>, catalogue: Arc<Catalogue>) {
    env.add_filter(
        "t",
        move |state: &State, text: Value, args: Kwargs| -> Result<Value, Error> {
            translate(&catalogue, state, &text, &args)
        },
    );
}

/// The result is safe HTML: the catalogue text is escaped, and so is each argument unless
/// it already is safe markup (a `{% set %}` block, e.g. the application's name in bold).
fn translate(
    catalogue: &Catalogue,
    state: &State,
    text: &Value,
    args: &Kwargs,
) -> Result<Value, Error> {
    if text.is_undefined() || text.is_none() {
        return Ok(Value::from_safe_string(String::new()));
    }
    let lang = state
        .lookup("lang")
        .and_then(|l| l.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_default();
    let english = text.to_string();
    let mut out = String::new();
    for piece in i18n::pieces(catalogue.tr(lang, &english)) {
        match piece {
            Piece::Text(t) => push_text(&mut out, t),
            Piece::Arg(name) => match args.get::<Option<Value>>(name)? {
                Some(v) if v.is_safe() => out.push_str(&v.to_string()),
                Some(v) => {
                    let _ = write!(out, "{}", HtmlEscape(&v.to_string()));
                }
                // Visible on the page, so a forgotten argument is noticed.
                None => {
                    let _ = write!(out, "{{{name}}}");
                }
            },
        }
    }
    Ok(Value::from_safe_string(out))
}

/// Escapes what HTML text and double-quoted attributes need; an apostrophe stays as typed.
fn push_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment<'static> {
        let catalogue = Catalogue::from_sources(&[(
            Lang::De,
            "\"to continue to {app}\" = \"um mit {app} fortzufahren\"\n\"Call me at {phone}\" = \"Rufen Sie mich unter {phone} an\"\n",
        )])
        .unwrap();
        let mut env = Environment::new();
        add_filter(&mut env, Arc::new(catalogue));
        env
    }

    fn render(src: &str, ctx: Value) -> String {
        let mut env = env();
        env.add_template("t.html", src).unwrap();
        env.get_template("t.html").unwrap().render(ctx).unwrap()
    }

    #[test]
    fn translates_in_the_page_language_and_escapes_arguments() {
        let src = r#"{{ "Call me at {phone}"|t(phone=p) }}"#;
        let ctx = minijinja::context! { lang => "de", p => "<b>+X 30</b>" };
        assert_eq!(
            render(src, ctx),
            "Rufen Sie mich unter &lt;b&gt;+X 30&lt;&#x2f;b&gt; an"
        );
        let ctx = minijinja::context! { p => "+X 30" };
        assert_eq!(render(src, ctx), "Call me at +X 30");
    }

    #[test]
    fn safe_arguments_stay_markup_and_text_keeps_apostrophes() {
        let src = r#"{% set app %}<strong>{{ name }}</strong>{% endset %}{{ "to continue to {app}"|t(app=app) }}"#;
        let ctx = minijinja::context! { lang => "de", name => "R&D <Portal>" };
        assert_eq!(
            render(src, ctx),
            "um mit <strong>R&amp;D &lt;Portal&gt;</strong> fortzufahren"
        );
        let src = r#"{{ msg|t }}|{{ none_here|t }}|{{ "We've <sent> {x}"|t }}"#;
        let ctx = minijinja::context! { lang => "fr", msg => "Don't \"panic\"." };
        assert_eq!(
            render(src, ctx),
            "Don't &quot;panic&quot;.||We've &lt;sent&gt; {x}"
        );
    }
}
