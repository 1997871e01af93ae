//! One simulated browser: a shared keep-alive HTTP client, its own cookie jar, redirects
//! followed by hand (so every hop is visible and timed as a browser would do it).
//!
//! The jar is per login; the connection pool is shared by all logins. A reqwest `Client`
//! per login would also give a fresh jar, but it sets up a TLS context and a new TCP
//! connection each time, spending client CPU on the two cores the servers need.

use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use url::Url;

/// The client every simulated browser shares: no automatic redirects, keep-alive pool.
pub fn client(concurrency: usize) -> reqwest::Result<Client> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(concurrency.max(1) * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
}

/// An HTTP response as the login driver needs it.
#[derive(Debug)]
pub struct Page {
    pub url: Url,
    pub status: StatusCode,
    pub location: Option<Url>,
    pub body: String,
}

/// One browser: cookies for the one host it talks to.
pub struct Browser {
    client: Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cookies: Vec::new(),
        }
    }

    pub async fn get(&mut self, url: Url) -> Result<Page, String> {
        let req = self.client.get(url.clone());
        self.send(url, req).await
    }

    pub async fn post(&mut self, url: Url, fields: &[(String, String)]) -> Result<Page, String> {
        let req = self.client.post(url.clone()).form(fields);
        self.send(url, req).await
    }

    async fn send(&mut self, url: Url, mut req: reqwest::RequestBuilder) -> Result<Page, String> {
        if !self.cookies.is_empty() {
            req = req.header(COOKIE, self.cookie_header());
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        for v in resp.headers().get_all(SET_COOKIE) {
            if let Ok(v) = v.to_str() {
                self.store_cookie(v);
            }
        }
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| url.join(l).ok());
        let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        Ok(Page {
            url,
            status,
            location,
            body,
        })
    }

    /// GETs `url` and follows up to `max` redirects.
    pub async fn get_following(&mut self, url: Url, max: usize) -> Result<Page, String> {
        let page = self.get(url).await?;
        self.follow(page, max).await
    }

    /// Follows redirects from `page` (as a browser does after a POST: 302/303 become GET).
    pub async fn follow(&mut self, mut page: Page, max: usize) -> Result<Page, String> {
        for _ in 0..max {
            match (&page.location, page.status.is_redirection()) {
                (Some(next), true) => page = self.get(next.clone()).await?,
                _ => return Ok(page),
            }
        }
        Err(format!("more than {max} redirects from {}", page.url))
    }

    /// The `Cookie` header this browser sends (for a request made outside `get` / `post`,
    /// such as a held event stream).
    pub fn cookie_header(&self) -> String {
        let parts: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        parts.join("; ")
    }

    /// Keeps `name=value` from a Set-Cookie line; an expiring one (Max-Age=0, or an empty
    /// or `deleted` value, the PHP idiom) removes the cookie. Domain and path are ignored:
    /// every request of a login goes to one host.
    fn store_cookie(&mut self, line: &str) {
        let mut parts = line.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let expired = value.is_empty()
            || value == "deleted"
            || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        self.cookies.retain(|(n, _)| n != name);
        if !expired {
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
    }
}
