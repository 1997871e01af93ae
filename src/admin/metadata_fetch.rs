//! Fetches SP metadata from a URL an admin typed, refusing internal addresses (SSRF guard).
//!
//! The console runs inside the network it protects, so "fetch metadata from URL" could be
//! pointed at loopback services, the cloud metadata service (169.254.169.254) or hosts on
//! private networks. Every address is checked where it is used:
//! - an IP literal in the URL (after the URL parser's normalisation, so `0x7f000001` and
//!   `2130706433` are seen as 127.0.0.1) before anything is sent;
//! - a DNS name in our own resolver, which hands the client only the addresses it checked,
//!   so a name that resolves to a public address for the check and to an internal one for
//!   the connection (DNS rebinding) cannot happen: there is one resolution, and it is the
//!   one connected to;
//! - every redirect hop again, by the same two rules.
//!
//! No proxy from the environment is used: a proxy would resolve the name itself and the
//! check would be about the proxy's address, not the target's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::config::AdminConfig;
use crate::mfa::networks::{NetRange, parse_all};

/// Largest metadata document accepted.
pub const MAX_METADATA: usize = 1024 * 1024;
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why an address is internal. A closed set: each names a range an admin can look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// 127.0.0.0/8, ::1
    Loopback,
    /// 0.0.0.0/8 ("this network", RFC 1122 §3.2.1.3), ::
    Unspecified,
    /// 10/8, 172.16/12, 192.168/16 (RFC 1918)
    Private,
    /// fc00::/7 (RFC 4193)
    UniqueLocal,
    /// 100.64/10, carrier-grade NAT (RFC 6598)
    SharedCgnat,
    /// 169.254/16 (RFC 3927; the cloud metadata service lives here), fe80::/10
    LinkLocal,
    /// 224/4, ff00::/8
    Multicast,
    /// 240/4 and 255.255.255.255 (RFC 1112 §4, RFC 919)
    Reserved,
}

impl Internal {
    fn describe(self) -> &'static str {
        match self {
            Self::Loopback => "a loopback address",
            Self::Unspecified => "an unspecified address",
            Self::Private => "a private (RFC 1918) address",
            Self::UniqueLocal => "a unique-local IPv6 address",
            Self::SharedCgnat => "a carrier-grade NAT address",
            Self::LinkLocal => "a link-local address (where cloud metadata services live)",
            Self::Multicast => "a multicast address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// The class of an internal address, or `None` for one that may be fetched from.
pub fn classify(ip: IpAddr) -> Option<Internal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Internal> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        (127, _) => Internal::Loopback,
        (0, _) => Internal::Unspecified,
        (10, _) | (192, 168) => Internal::Private,
        (172, b) if (16..32).contains(&b) => Internal::Private,
        (100, b) if (64..128).contains(&b) => Internal::SharedCgnat,
        (169, 254) => Internal::LinkLocal,
        (224..=239, _) => Internal::Multicast,
        (240..=255, _) => Internal::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Internal> {
    // IPv4 carried in IPv6 reaches the IPv4 host: ::ffff:a.b.c.d (mapped, RFC 4291 §2.5.5.2),
    // the deprecated ::a.b.c.d (compatible, §2.5.5.1) and the NAT64 well-known prefix
    // 64:ff9b::/96 (RFC 6052 §2.1).
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip.is_loopback() {
        return Some(Internal::Loopback);
    }
    if ip.is_unspecified() {
        return Some(Internal::Unspecified);
    }
    let embedded = Ipv4Addr::from(u128::from(ip) as u32);
    if seg[..6] == [0; 6] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded);
    }
    match seg[0] {
        s if s & 0xfe00 == 0xfc00 => Some(Internal::UniqueLocal),
        s if s & 0xffc0 == 0xfe80 => Some(Internal::LinkLocal),
        s if s & 0xff00 == 0xff00 => Some(Internal::Multicast),
        _ => None,
    }
}

/// Which addresses the fetch may reach, from `[admin]`.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    allow_private: bool,
    allowed: Vec<NetRange>,
}

impl FetchPolicy {
    /// The policy of the config (whose list `Config::validate` has already checked).
    pub fn from_config(admin: &AdminConfig) -> Self {
        Self {
            allow_private: admin.allow_private_metadata_urls,
            allowed: parse_all(&admin.metadata_url_allowed_networks).unwrap_or_default(),
        }
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn check(&self, ip: IpAddr) -> Option<Internal> {
        if self.allow_private || self.allowed.iter().any(|n| n.contains(ip)) {
            return None;
        }
        classify(ip)
    }
}

/// A refused address: `host` (as in the URL) is or resolved to `ip`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{host} is {} ({ip})", .class.describe())]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub class: Internal,
}

/// Why a fetch failed; `Display` is the message for the admin.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{0}` is not a URL.")]
    NotAUrl(String),
    #[error("Only http and https URLs can be fetched.")]
    Scheme,
    #[error(
        "{url} was not fetched: {refused}. The console fetches metadata only from public \
         addresses (allowed by admin.allow_private_metadata_urls or \
         admin.metadata_url_allowed_networks); paste or upload the metadata instead."
    )]
    Internal { url: String, refused: Refused },
    #[error("{0} could not be fetched: {1}")]
    Failed(String, String),
    #[error("{0} answered {1}")]
    Status(String, reqwest::StatusCode),
    #[error("{0} sent more than 1 MiB")]
    TooLarge(String),
    #[error("{0} did not send UTF-8 text")]
    NotText(String),
}

/// The host's address when the URL names one directly (normalised by the URL parser).
fn literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Checks scheme and, for an IP literal, the address: the checks every hop must pass.
fn check_hop(url: &url::Url, policy: &FetchPolicy) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(FetchError::Scheme);
    }
    if let Some(ip) = literal(url)
        && let Some(class) = policy.check(ip)
    {
        return Err(FetchError::Internal {
            url: url.to_string(),
            refused: Refused {
                host: url.host_str().unwrap_or_default().to_owned(),
                ip,
                class,
            },
        });
    }
    Ok(())
}

/// Resolves names once and passes on only addresses the policy allows; a name with any
/// internal address is refused as a whole (round-robin must not pick the internal one).
struct GuardedResolver(Arc<FetchPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some((ip, class)) = addrs
                .iter()
                .find_map(|a| policy.check(a.ip()).map(|c| (a.ip(), c)))
            {
                return Err(Box::new(Refused { host, ip, class }) as _);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Finds a `Refused` anywhere in an error's source chain.
fn refusal(mut e: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    loop {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        if let Some(f) = e.downcast_ref::<FetchError>()
            && let FetchError::Internal { refused, .. } = f
        {
            return Some(refused.clone());
        }
        e = e.source()?;
    }
}

/// Fetches `url` (http/https, 10 s, 3 redirects, 1 MiB) under `policy`.
pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<String, FetchError> {
    let result = fetch_inner(url.trim(), policy).await;
    if let Err(e) = &result {
        // The admin reads the message; the log keeps which hop and address, for whoever
        // investigates an attempt to reach the inside.
        match e {
            FetchError::Internal { url: hop, refused } => tracing::warn!(
                target: "audit",
                requested = url.trim(), refused_hop = %hop, host = %refused.host,
                address = %refused.ip, class = ?refused.class,
                "metadata fetch refused: internal address"
            ),
            other => {
                tracing::info!(requested = url.trim(), error = %other, "metadata fetch failed")
            }
        }
    }
    result
}

async fn fetch_inner(url: &str, policy: &FetchPolicy) -> Result<String, FetchError> {
    let parsed = url::Url::parse(url).map_err(|e| FetchError::NotAUrl(format!("{url}: {e}")))?;
    check_hop(&parsed, policy)?;
    let policy = Arc::new(policy.clone());
    let hops = policy.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        match check_hop(attempt.url(), &hops) {
            Ok(()) => attempt.follow(),
            Err(e) => attempt.error(e),
        }
    });
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(redirects)
        .no_proxy()
        .dns_resolver(GuardedResolver(policy))
        .build()
        .map_err(|e| FetchError::Failed(parsed.to_string(), e.to_string()))?;
    let failed = |e: reqwest::Error| match refusal(&e) {
        Some(refused) => FetchError::Internal {
            url: e
                .url()
                .map_or_else(|| parsed.to_string(), |u| u.to_string()),
            refused,
        },
        None => FetchError::Failed(parsed.to_string(), e.to_string()),
    };
    let mut res = client.get(parsed.clone()).send().await.map_err(failed)?;
    if !res.status().is_success() {
        return Err(FetchError::Status(parsed.to_string(), res.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(failed)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_METADATA {
            return Err(FetchError::TooLarge(parsed.to_string()));
        }
    }
    String::from_utf8(body).map_err(|_| FetchError::NotText(parsed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<Internal> {
        classify(s.parse().expect(s))
    }

    #[test]
    fn internal_ranges_are_named_and_public_addresses_pass() {
        use Internal::*;
        for (ip, want) in [
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.0.1", Private),
            ("fc00::1", UniqueLocal),
            ("fdff:ffff::1", UniqueLocal),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("224.0.0.1", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Reserved),
            // IPv4 inside IPv6 is the IPv4 host.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:10.0.0.1", Private),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
        ] {
            assert_eq!(class(ip), Some(want), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "2001:4860:4860::8888",
            "fec0::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn the_switch_and_the_allowed_networks_open_internal_addresses() {
        let mut admin = AdminConfig::default();
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            FetchPolicy::from_config(&admin).check(lo),
            Some(Internal::Loopback)
        );
        admin.metadata_url_allowed_networks = vec!["127.0.0.1".into()];
        let only = FetchPolicy::from_config(&admin);
        assert_eq!(only.check(lo), None);
        assert_eq!(
            only.check("127.0.0.2".parse().expect("ip")),
            Some(Internal::Loopback)
        );
        admin.metadata_url_allowed_networks.clear();
        admin.allow_private_metadata_urls = true;
        assert_eq!(
            FetchPolicy::from_config(&admin).check("169.254.169.254".parse().expect("ip")),
            None
        );
    }

    #[test]
    fn odd_spellings_of_loopback_are_normalised_before_the_check() {
        let policy = FetchPolicy::from_config(&AdminConfig::default());
        for url in [
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:7f00:1]/",
            "HTTP://[0:0:0:0:0:0:0:1]:80/",
        ] {
            let parsed = url::Url::parse(url).expect(url);
            assert!(
                matches!(
                    check_hop(&parsed, &policy),
                    Err(FetchError::Internal { .. })
                ),
                "{url}"
            );
        }
        let public = url::Url::parse("https://sp.example.com/metadata").expect("url");
        assert!(check_hop(&public, &policy).is_ok());
        let ftp = url::Url::parse("ftp://8.8.8.8/md.xml").expect("url");
        assert!(matches!(check_hop(&ftp, &policy), Err(FetchError::Scheme)));
    }
}
