//! The client's real address (and scheme) behind trusted reverse proxies, computed once per request.
//!
//! Behind a load balancer every connection comes from the balancer, so the socket peer says
//! nothing about who is signing in. A proxy listed in `server.trusted_proxies` tells us in a
//! header; nobody else is believed, since any client can send any header. Which header is
//! read is the admin's choice (`server.forwarded_header`): a proxy that appends to
//! `X-Forwarded-For` passes a client's own `Forwarded` header through untouched, so reading
//! both would let a client pick its address.
//!
//! Headers are read from the right: each proxy appends the address it received the
//! connection from, so the rightmost entries are the ones our own proxies wrote and
//! everything to the left of the first untrusted entry was written by that untrusted party.
//! Only the rightmost `MAX_HOPS` entries within the last `MAX_BYTES` bytes are ever looked
//! at, so a header of any size or hop count costs the same small amount of work.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::ForwardedHeader;
use crate::mfa::networks::NetRange;
use crate::server::Throttle;

/// Hops read from the right of a forwarded header; real chains are two or three long.
pub const MAX_HOPS: usize = 20;
/// Bytes of a forwarded header read from its end (20 bracketed IPv6 addresses with ports
/// and parameters fit several times over).
pub const MAX_BYTES: usize = 2048;
/// One log line per this period for each kind of ignored or unusable header.
const LOG_EVERY: Duration = Duration::from_secs(60);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The scheme the client used to reach the first proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(s: &str) -> Option<Scheme> {
        match s.trim().trim_matches('"').to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }
}

/// Where a request's client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The socket peer (no trusted proxy, or nothing usable in its header).
    Socket,
    /// A trusted proxy's forwarded header.
    Header,
}

/// The request's client, as every handler sees it (via `ClientIp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// Only from a trusted proxy's header; `None` when the proxy said nothing.
    pub scheme: Option<Scheme>,
    pub source: Source,
}

/// Why a trusted proxy's header gave no client address (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// An entry that is neither an address nor a name RFC 7239 §6 allows.
    Garbage,
    /// `unknown` or an obfuscated identifier (RFC 7239 §6.2, §6.3): the proxy would not say.
    Hidden,
    /// Every entry read was a trusted proxy (or the header was cut at `MAX_HOPS` /
    /// `MAX_BYTES` before an untrusted one).
    OnlyProxies,
}

impl Unusable {
    fn as_str(self) -> &'static str {
        match self {
            Unusable::Garbage => "an entry is not an address",
            Unusable::Hidden => "the client is unknown or obfuscated",
            Unusable::OnlyProxies => "no untrusted hop within the entries read",
        }
    }
}

/// One entry of a forwarded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    Ip(IpAddr),
    Hidden,
    Garbage,
}

/// The trusted proxies and the throttled log lines about their headers; one per app.
pub struct Proxies {
    nets: Vec<NetRange>,
    header: ForwardedHeader,
    untrusted_log: Mutex<Throttle>,
    unusable_log: Mutex<Throttle>,
}

impl Proxies {
    pub fn new(nets: Vec<NetRange>, header: ForwardedHeader) -> Self {
        Proxies {
            nets,
            header,
            untrusted_log: Mutex::new(Throttle::new(LOG_EVERY)),
            unusable_log: Mutex::new(Throttle::new(LOG_EVERY)),
        }
    }

    /// The configured list (validated at start, so nothing is dropped here).
    pub fn from_config(server: &crate::config::ServerConfig) -> Self {
        let nets = crate::mfa::networks::parse_all(&server.trusted_proxies).unwrap_or_default();
        Self::new(nets, server.forwarded_header)
    }

    pub fn nets(&self) -> &[NetRange] {
        &self.nets
    }

    pub fn is_proxy(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client of a request that reached us from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        let peer = peer.to_canonical();
        let socket = ClientAddr {
            ip: peer,
            scheme: None,
            source: Source::Socket,
        };
        let name = match self.header {
            ForwardedHeader::XForwardedFor => X_FORWARDED_FOR,
            ForwardedHeader::Forwarded => FORWARDED,
        };
        if !self.is_proxy(peer) {
            let sent = [X_FORWARDED_FOR, FORWARDED, X_FORWARDED_PROTO]
                .into_iter()
                .find(|h| headers.contains_key(h));
            if let Some(h) = sent
                && let Some(n) = hit(&self.untrusted_log)
            {
                tracing::warn!(
                    peer = %peer,
                    header = h.as_str(),
                    requests = n,
                    "forwarded header from a peer not in server.trusted_proxies ignored; \
                     the peer's address is the client's"
                );
            }
            return socket;
        }
        if !headers.contains_key(&name) {
            // A proxy's own request (a health check) or a proxy not set to insert the
            // header: the proxy is the client, which `is_proxy` callers treat with care.
            return socket;
        }
        match resolve(self.header, headers, |ip| self.is_proxy(ip)) {
            Ok((ip, scheme)) => ClientAddr {
                ip,
                scheme,
                source: Source::Header,
            },
            Err(why) => {
                if let Some(n) = hit(&self.unusable_log) {
                    tracing::warn!(
                        peer = %peer,
                        header = name.as_str(),
                        problem = why.as_str(),
                        requests = n,
                        "trusted proxy's forwarded header gave no client address; \
                         using the proxy's own"
                    );
                }
                socket
            }
        }
    }
}

fn hit(log: &Mutex<Throttle>) -> Option<u64> {
    // A poisoned lock only means another request panicked while logging; keep counting.
    let mut t = log.lock().unwrap_or_else(|p| p.into_inner());
    t.hit(tokio::time::Instant::now())
}

/// Puts the request's `ClientAddr` in its extensions for `ClientIp` and everything else.
/// Requests without a socket (in-process tests) are left alone.
pub async fn middleware(
    State(proxies): State<std::sync::Arc<Proxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = proxies.client(addr.ip(), req.headers());
        req.extensions_mut().insert(client);
    }
    next.run(req).await
}

/// The client address and scheme from the chosen header, given which addresses are proxies.
fn resolve(
    header: ForwardedHeader,
    headers: &HeaderMap,
    is_proxy: impl Fn(IpAddr) -> bool,
) -> Result<(IpAddr, Option<Scheme>), Unusable> {
    match header {
        ForwardedHeader::XForwardedFor => {
            let hops = tail_entries(headers, &X_FORWARDED_FOR);
            let hops = hops
                .iter()
                .map(|e| e.as_deref().map_or(Hop::Garbage, parse_xff));
            let (index, ip) = walk(hops, &is_proxy)?;
            // X-Forwarded-Proto has no standard; a chain of proxies appends like
            // X-Forwarded-For, so the entry at the client's position is the client's scheme,
            // and a single value (the usual case) is the first proxy's.
            let protos = tail_entries(headers, &X_FORWARDED_PROTO);
            let scheme = protos
                .get(index)
                .or(protos.last())
                .and_then(|p| Scheme::parse(p.as_deref()?));
            Ok((ip, scheme))
        }
        ForwardedHeader::Forwarded => {
            let parsed: Vec<(Hop, Option<Scheme>)> = tail_entries(headers, &FORWARDED)
                .iter()
                .map(|e| e.as_deref().map_or((Hop::Garbage, None), parse_forwarded))
                .collect();
            let (index, ip) = walk(parsed.iter().map(|p| p.0), &is_proxy)?;
            Ok((ip, parsed.get(index).and_then(|p| p.1)))
        }
    }
}

/// The first untrusted address from the right: (its index in `hops`, the address).
fn walk(
    hops: impl Iterator<Item = Hop>,
    is_proxy: impl Fn(IpAddr) -> bool,
) -> Result<(usize, IpAddr), Unusable> {
    for (i, hop) in hops.enumerate() {
        match hop {
            Hop::Ip(ip) if is_proxy(ip) => continue,
            Hop::Ip(ip) => return Ok((i, ip)),
            Hop::Hidden => return Err(Unusable::Hidden),
            Hop::Garbage => return Err(Unusable::Garbage),
        }
    }
    Err(Unusable::OnlyProxies)
}

/// At most `MAX_HOPS` comma-separated entries of every `name` field together (RFC 9110
/// §5.3: repeated fields are one comma-joined list), rightmost first, from the last
/// `MAX_BYTES` bytes only. An entry cut by the byte limit is not returned: its visible part
/// could look like a different address ("10.1.2.3" from "110.1.2.3"). An entry that is not
/// visible ASCII is `None`: no proxy writes one, but it only matters if the walk reaches it,
/// so a client's non-ASCII bytes left of the proxy's entry cannot spoil that entry.
fn tail_entries(headers: &HeaderMap, name: &HeaderName) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut budget = MAX_BYTES;
    for value in headers.get_all(name).iter().rev() {
        let bytes = value.as_bytes();
        let cut = bytes.len() > budget;
        let tail = &bytes[bytes.len() - bytes.len().min(budget)..];
        budget -= tail.len();
        let mut parts = tail.rsplit(|b| *b == b',').peekable();
        while let Some(part) = parts.next() {
            if cut && parts.peek().is_none() {
                return out;
            }
            let text = part
                .iter()
                .all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
                .then(|| String::from_utf8_lossy(part).trim().to_owned());
            out.push(text);
            if out.len() == MAX_HOPS {
                return out;
            }
        }
        if budget == 0 {
            break;
        }
    }
    out
}

/// An X-Forwarded-For entry: an address, optionally with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:80`), as some balancers write it.
fn parse_xff(entry: &str) -> Hop {
    node(entry).unwrap_or(Hop::Garbage)
}

/// A `Forwarded` element (RFC 7239 §4): `;`-separated `name=value` pairs whose names are
/// case-insensitive; the `for` node and the `proto` scheme.
fn parse_forwarded(element: &str) -> (Hop, Option<Scheme>) {
    let mut hop = Hop::Garbage;
    let mut seen_for = false;
    let mut scheme = None;
    for pair in element.split(';') {
        let Some((name, value)) = pair.split_once('=') else {
            return (Hop::Garbage, None);
        };
        let Some(value) = unquote(value.trim()) else {
            return (Hop::Garbage, None);
        };
        match name.trim().to_ascii_lowercase().as_str() {
            // §5.2: one `for` per element; two of them are not something a proxy writes.
            "for" if seen_for => return (Hop::Garbage, None),
            "for" => {
                seen_for = true;
                hop = node(value).unwrap_or(Hop::Garbage);
            }
            "proto" => scheme = Scheme::parse(value),
            _ => {}
        }
    }
    (hop, scheme)
}

/// A token or a quoted-string without escapes (RFC 7230 §3.2.6); `None` for anything else
/// (a stray or escaped quote is never in a value a proxy writes).
fn unquote(v: &str) -> Option<&str> {
    let inner = match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => v,
    };
    (!inner.contains(['"', '\\'])).then_some(inner)
}

/// A node (RFC 7239 §6): IPv4, `[IPv6]`, `unknown` or `_obfuscated`, each with an optional
/// `:port` (a number or an obfuscated port). A bare IPv6 address, as X-Forwarded-For
/// writes it, is accepted too.
fn node(s: &str) -> Option<Hop> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if s.eq_ignore_ascii_case("unknown") || (s.starts_with('_') && obfuscated(&s[1..])) {
        return Some(Hop::Hidden);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Hop::Ip(ip.to_canonical()));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        // §6: brackets hold IPv6 only.
        let ip: std::net::Ipv6Addr = host.parse().ok()?;
        (IpAddr::V6(ip), port)
    } else {
        let (host, port) = s.split_once(':')?;
        let ip: std::net::Ipv4Addr = host.parse().ok()?;
        (IpAddr::V4(ip), Some(port))
    };
    match port {
        Some(p) if !(p.parse::<u16>().is_ok() || (p.starts_with('_') && obfuscated(&p[1..]))) => {
            None
        }
        _ => Some(Hop::Ip(host.to_canonical())),
    }
}

/// The characters of an obfuscated identifier after its `_` (RFC 7239 §6.3).
fn obfuscated(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const LB: &str = "10.0.0.5";

    fn proxies(header: ForwardedHeader) -> Proxies {
        let nets =
            crate::mfa::networks::parse_all(&["10.0.0.0/29".into(), "2001:db8:f::/48".into()])
                .expect("nets");
        Proxies::new(nets, header)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_bytes(v.as_bytes()).expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect(s)
    }

    fn xff(peer: &str, pairs: &[(&'static str, &str)]) -> ClientAddr {
        proxies(ForwardedHeader::XForwardedFor).client(ip(peer), &headers(pairs))
    }

    fn fwd(value: &str) -> ClientAddr {
        proxies(ForwardedHeader::Forwarded).client(ip(LB), &headers(&[("forwarded", value)]))
    }

    #[test]
    fn rightmost_untrusted_hop_is_the_client() {
        let c = xff(LB, &[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            c.ip,
            ip("203.0.113.9"),
            "the spoofed leftmost entry is not read"
        );
        assert_eq!(c.source, Source::Header);
        // Repeated header fields are one list; the last field is the rightmost.
        let c = xff(
            LB,
            &[
                ("x-forwarded-for", "198.51.100.1"),
                ("x-forwarded-for", "203.0.113.7"),
            ],
        );
        assert_eq!(c.ip, ip("203.0.113.7"));
        let c = xff(LB, &[("x-forwarded-for", "[2001:db8::7]:4711")]);
        assert_eq!(c.ip, ip("2001:db8::7"));
        let c = xff(LB, &[("x-forwarded-for", "::ffff:192.0.2.1")]);
        assert_eq!(c.ip, ip("192.0.2.1"), "v4-mapped is the v4 host");
        let c = xff(LB, &[("x-forwarded-for", "192.0.2.1:55012")]);
        assert_eq!(c.ip, ip("192.0.2.1"));
    }

    #[test]
    fn headers_from_untrusted_peers_are_ignored() {
        let c = xff(
            "192.0.2.50",
            &[
                ("x-forwarded-for", "10.9.9.9"),
                ("forwarded", "for=1.2.3.4"),
            ],
        );
        assert_eq!(c.ip, ip("192.0.2.50"));
        assert_eq!(c.source, Source::Socket);
        assert_eq!(c.scheme, None);
        // With no trusted proxies at all nothing is believed from anyone.
        let none = Proxies::new(Vec::new(), ForwardedHeader::XForwardedFor);
        let c = none.client(ip(LB), &headers(&[("x-forwarded-for", "203.0.113.9")]));
        assert_eq!(c.ip, ip(LB));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // NetScaler appends to X-Forwarded-For and passes a client's `Forwarded` through.
        let c = xff(
            LB,
            &[
                ("forwarded", "for=198.51.100.66"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
        );
        assert_eq!(c.ip, ip("203.0.113.9"));
        let c = proxies(ForwardedHeader::Forwarded)
            .client(ip(LB), &headers(&[("x-forwarded-for", "198.51.100.66")]));
        assert_eq!((c.ip, c.source), (ip(LB), Source::Socket));
    }

    #[test]
    fn forwarded_per_rfc_7239() {
        assert_eq!(
            fwd("for=192.0.2.60;proto=https;by=203.0.113.43").ip,
            ip("192.0.2.60")
        );
        assert_eq!(
            fwd("for=192.0.2.60;proto=https").scheme,
            Some(Scheme::Https)
        );
        assert_eq!(
            fwd("For=\"[2001:db8:cafe::17]:4711\"").ip,
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd("for=\"[2001:db8:cafe::17]\"").ip,
            ip("2001:db8:cafe::17")
        );
        assert_eq!(fwd("for=\"192.0.2.43:47011\"").ip, ip("192.0.2.43"));
        assert_eq!(
            fwd("for=198.51.100.1, for=192.0.2.60;proto=http, for=10.0.0.3").ip,
            ip("192.0.2.60")
        );
        // unknown and obfuscated clients: the proxy would not say, so the proxy is the client.
        for hidden in [
            "for=unknown",
            "for=_hidden",
            "for=\"_SEVKISEK\"",
            "for=_x, for=10.0.0.1",
        ] {
            let c = fwd(hidden);
            assert_eq!((c.ip, c.source), (ip(LB), Source::Socket), "{hidden}");
        }
        // An obfuscated port does not hide a real address.
        assert_eq!(fwd("for=\"192.0.2.43:_p1\"").ip, ip("192.0.2.43"));
    }

    #[test]
    fn proto_follows_the_client_hop() {
        let c = xff(
            LB,
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(c.scheme, Some(Scheme::Https));
        let c = xff(
            LB,
            &[
                ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
                ("x-forwarded-proto", "https, http"),
            ],
        );
        assert_eq!(c.scheme, Some(Scheme::Https));
        let c = xff(
            LB,
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "gopher"),
            ],
        );
        assert_eq!((c.ip, c.scheme), (ip("203.0.113.9"), None));
    }

    #[test]
    fn hostile_values_fall_back_to_the_peer() {
        let long = "9".repeat(100_000);
        let many_proxies = vec!["10.0.0.1"; 5000].join(",");
        for bad in [
            "",
            ",,,",
            "not-an-ip",
            "1.2.3.4.5",
            "300.1.1.1",
            "[::1",
            "[1.2.3.4]:80",
            "::ffff:zz",
            "2001:db8:::1",
            "[2001:db8::1]:99999",
            "1.2.3.4:port",
            "1.2.3.4 5.6.7.8",
            long.as_str(),
            many_proxies.as_str(),
        ] {
            let c = xff(LB, &[("x-forwarded-for", bad)]);
            assert_eq!((c.ip, c.source), (ip(LB), Source::Socket), "{:.60}", bad);
        }
        for bad in [
            "for",
            "for=",
            "for=1.2.3.4;for=5.6.7.8",
            "for=\"1.2.3.4",
            "for=\"[2001:db8::1]\\\"\"",
            "for=[2001:db8::1",
            "for=\"[1.2.3.4]\"",
            "for==",
            "proto=https",
        ] {
            let c = fwd(bad);
            assert_eq!((c.ip, c.source), (ip(LB), Source::Socket), "{bad}");
        }
        // Non-ASCII bytes are not a proxy's...
        let c = xff(LB, &[("x-forwarded-for", "203.0.113.9\u{e9}")]);
        assert_eq!(c.ip, ip(LB));
        // ...but a client's, left of the proxy's entry, do not spoil that entry.
        let c = xff(LB, &[("x-forwarded-for", "\u{e9}\u{1f600}, 203.0.113.9")]);
        assert_eq!(c.ip, ip("203.0.113.9"));
        let c = fwd("for=\"\u{e9}\", for=203.0.113.9;proto=https");
        assert_eq!((c.ip, c.scheme), (ip("203.0.113.9"), Some(Scheme::Https)));
    }

    #[test]
    fn huge_headers_still_read_the_proxys_entry() {
        // A client stuffs the header; the proxy appends the real address at the right.
        let stuffed = format!("{}, 203.0.113.9", "1.1.1.1, ".repeat(20_000));
        assert_eq!(
            xff(LB, &[("x-forwarded-for", &stuffed)]).ip,
            ip("203.0.113.9")
        );
        let stuffed = format!("{}203.0.113.9", "x".repeat(100_000) + ",");
        assert_eq!(
            xff(LB, &[("x-forwarded-for", &stuffed)]).ip,
            ip("203.0.113.9")
        );
        let stuffed = format!("{}for=203.0.113.9", "for=_a, ".repeat(20_000));
        assert_eq!(fwd(&stuffed).ip, ip("203.0.113.9"));
    }

    #[test]
    fn reading_stops_at_the_hop_and_byte_caps() {
        // The client is more than MAX_HOPS entries from the right: not reached.
        let chain = format!("203.0.113.9, {}", vec!["10.0.0.1"; MAX_HOPS].join(", "));
        assert_eq!(xff(LB, &[("x-forwarded-for", &chain)]).ip, ip(LB));
        let chain = format!("203.0.113.9, {}", vec!["10.0.0.1"; MAX_HOPS - 1].join(", "));
        assert_eq!(
            xff(LB, &[("x-forwarded-for", &chain)]).ip,
            ip("203.0.113.9")
        );
        // An entry cut by the byte cap is never read as a shorter address.
        let pad = " ".repeat(MAX_BYTES - "10.1.2.3,10.0.0.1".len());
        // The last MAX_BYTES bytes begin at "10.1.2.3": the entry is really "110.1.2.3".
        let cut = format!("110.1.2.3,{pad}10.0.0.1");
        assert_eq!(cut.len(), MAX_BYTES + 1);
        let c = xff(LB, &[("x-forwarded-for", &cut)]);
        assert_eq!(c.ip, ip(LB), "the cut entry is not taken for 10.1.2.3");
    }

    #[test]
    fn a_trusted_proxy_without_a_header_is_the_client() {
        let c = xff(LB, &[]);
        assert_eq!((c.ip, c.source), (ip(LB), Source::Socket));
    }

    /// Log output captured from `f`, one string per line.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buf").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn ignored_and_unusable_headers_are_logged_once_not_per_request() {
        let p = proxies(ForwardedHeader::XForwardedFor);
        let spoof = headers(&[("x-forwarded-for", "10.0.0.1")]);
        let garbage = headers(&[("x-forwarded-for", "<script>")]);
        let fine = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let lines = logged(|| {
            for _ in 0..1000 {
                p.client(ip("192.0.2.50"), &spoof);
                p.client(ip(LB), &garbage);
                p.client(ip(LB), &fine);
            }
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].contains("not in server.trusted_proxies"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("peer=192.0.2.50"), "{}", lines[0]);
        assert!(
            lines[1].contains("an entry is not an address"),
            "{}",
            lines[1]
        );
        // Headerless requests from anyone are not worth a line.
        let lines = logged(|| {
            p.client(ip("192.0.2.50"), &HeaderMap::new());
            p.client(ip(LB), &HeaderMap::new());
        });
        assert!(lines.is_empty(), "{lines:#?}");
    }
}
