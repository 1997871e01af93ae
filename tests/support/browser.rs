//! A scripted, browser-less client: follows the SAML redirects and auto-POST forms by hand.

#![allow(dead_code)]

use base64::Engine;
use reqwest::{Client, StatusCode, redirect::Policy};

pub struct Browser {
    pub http: Client,
}

/// An HTML form as the auto-POST page carries it.
#[derive(Debug, Clone)]
pub struct PostForm {
    pub action: String,
    pub saml_response: String,
    pub relay_state: Option<String>,
}

impl PostForm {
    pub fn xml(&self) -> String {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.saml_response)
            .expect("SAMLResponse is base64");
        String::from_utf8(bytes).expect("utf8")
    }
}

pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `<input ... name="NAME" value="...">` in an HTML page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(unescape(&rest[v..v + end]))
}

pub fn form_action(html: &str) -> Option<String> {
    let at = html.find("action=\"")? + 8;
    let end = html[at..].find('"')?;
    Some(unescape(&html[at..at + end]))
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// A browser on another machine: its connections come from `ip` (any 127.x address
    /// reaches a server on 127.0.0.1), so the server sees a different client address.
    pub fn from_address(ip: std::net::IpAddr) -> Self {
        Self {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .local_address(ip)
                .build()
                .expect("client"),
        }
    }

    /// A browser at `ip` whose every request carries `headers` (a proxy's forwarded
    /// headers, or a client's spoofed ones).
    pub fn from_address_with(ip: std::net::IpAddr, headers: reqwest::header::HeaderMap) -> Self {
        Self {
            http: Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .local_address(ip)
                .default_headers(headers)
                .build()
                .expect("client"),
        }
    }

    /// GET, following up to 10 redirects; returns (final URL, status, body).
    pub async fn get(&self, url: &str) -> (String, StatusCode, String) {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let res = self.http.get(&url).send().await.expect("GET");
            if res.status().is_redirection() {
                let loc = res.headers()["location"]
                    .to_str()
                    .expect("location")
                    .to_owned();
                url = join(&url, &loc);
                continue;
            }
            let status = res.status();
            return (url, status, res.text().await.expect("body"));
        }
        panic!("too many redirects from {url}");
    }

    /// POST a form, following redirects afterwards with GET.
    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> (String, StatusCode, String) {
        let res = self.http.post(url).form(form).send().await.expect("POST");
        if res.status().is_redirection() {
            let loc = res.headers()["location"]
                .to_str()
                .expect("location")
                .to_owned();
            return self.get(&join(url, &loc)).await;
        }
        let status = res.status();
        (url.to_owned(), status, res.text().await.expect("body"))
    }

    /// Posts `fields` with the sign-in's `flow` to Tessera's sign-in form at `base`: one step
    /// of a sign-in, as its page's form would. The status and page that follow.
    #[allow(dead_code)] // not every test binary that includes this module steps a sign-in
    pub async fn step(
        &self,
        base: &str,
        flow: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut form = vec![("flow", flow)];
        form.extend_from_slice(fields);
        let (_, status, page) = self.post(&format!("{base}/adfs/ls/login"), &form).await;
        (status, page)
    }

    /// On a Tessera login page: type the user name and password and submit.
    pub async fn sign_in(
        &self,
        login_url: &str,
        page: &str,
        user: &str,
        password: &str,
    ) -> (String, StatusCode, String) {
        let flow = input_value(page, "flow").expect("login page has a flow field");
        let action = join(login_url, &form_action(page).expect("login form action"));
        self.post(
            &action,
            &[("flow", &flow), ("username", user), ("password", password)],
        )
        .await
    }

    /// On an auto-POST page: extract the form.
    pub fn post_form(page: &str) -> PostForm {
        PostForm {
            action: form_action(page).expect("post page has a form"),
            saml_response: input_value(page, "SAMLResponse").expect("SAMLResponse field"),
            relay_state: input_value(page, "RelayState"),
        }
    }

    /// Submit the auto-POST form to the SP, as the browser's script would.
    pub async fn submit(&self, form: &PostForm) -> (String, StatusCode, String) {
        let mut fields = vec![("SAMLResponse", form.saml_response.as_str())];
        if let Some(rs) = &form.relay_state {
            fields.push(("RelayState", rs.as_str()));
        }
        self.post(&form.action, &fields).await
    }
}

pub fn join(base: &str, loc: &str) -> String {
    url::Url::parse(base)
        .expect("base url")
        .join(loc)
        .expect("join")
        .to_string()
}

/// What a browser would submit from the first `<form>` whose action is `action`: text,
/// number, hidden and password inputs, checked checkboxes, each select's selected option
/// and textareas, in document order. Enough for our own server-rendered forms.
pub fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let start = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form posting to {action}"));
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let at = tag.find(&key)? + key.len();
        let stop = tag[at..].find('"')?;
        Some(unescape(&tag[at..at + stop]))
    };
    let mut out = Vec::new();
    let mut rest = form;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        let close = rest.find('>').expect("tag closes");
        let tag = &rest[..=close];
        if tag.starts_with("<input") {
            let kind = attr(tag, "type").unwrap_or_else(|| "text".into());
            if let Some(name) = attr(tag, "name") {
                let value = attr(tag, "value").unwrap_or_default();
                match kind.as_str() {
                    "checkbox" | "radio" if tag.contains(" checked") => out.push((name, value)),
                    "checkbox" | "radio" | "submit" => {}
                    _ => out.push((name, value)),
                }
            }
        } else if tag.starts_with("<select") {
            let name = attr(tag, "name").expect("select name");
            let end = rest.find("</select>").expect("select closes");
            let body = &rest[..end];
            let selected = body
                .split("<option")
                .skip(1)
                .find(|o| o.contains(" selected"))
                .or_else(|| body.split("<option").nth(1));
            if let Some(o) = selected {
                out.push((
                    name,
                    attr(&format!("<option{o}"), "value").unwrap_or_default(),
                ));
            }
            rest = &rest[end..];
        } else if tag.starts_with("<textarea") {
            let name = attr(tag, "name").expect("textarea name");
            let end = rest.find("</textarea>").expect("textarea closes");
            out.push((name, unescape(&rest[close + 1..end])));
            rest = &rest[end..];
        }
        rest = &rest[1..];
    }
    out
}

/// Replaces every value of `name` in `fields` with `values` (several for a multi-choice).
pub fn set_field(fields: &mut Vec<(String, String)>, name: &str, values: &[&str]) {
    let at = fields.iter().position(|(k, _)| k == name);
    fields.retain(|(k, _)| k != name);
    let at = at.unwrap_or(fields.len()).min(fields.len());
    for (i, v) in values.iter().enumerate() {
        fields.insert(at + i, (name.to_owned(), (*v).to_owned()));
    }
}
