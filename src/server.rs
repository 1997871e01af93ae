//! Serves the router over HTTP/1.1 within limits a hostile client cannot outlast: time to send a request head, idle keep-alive, stalled bodies, slow requests, header size, open connections and file descriptors.
//!
//! Built on hyper directly rather than `axum::serve`, which has none of these limits.
//! HTTP/1.1 only, over TLS too (`tls`): one protocol to bound, and a sign-in is a handful of
//! requests, where HTTP/2's multiplexing buys little.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::tls::Transport;

/// What a refused connection reads: it may come back shortly.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Retry-After: 5\r\n\
Connection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 52\r\n\
\r\n\
The server is busy. Please try again in a moment.\r\n";

/// How long a refused connection may take to read its answer before it is dropped.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// Refusals being written at once; past that a refused socket is closed without a word, so a
/// flood of refusals cannot itself use up the file descriptors kept in reserve.
const REFUSERS: usize = 32;
/// Pause after accept() fails for want of a resource (file descriptors, memory): the
/// connection stays in the listen queue, so trying again at once would only spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A repeated warning (refused connections, accept failures) is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// hyper refuses a read buffer smaller than this.
const MIN_BUF: usize = 8192;
/// A cap this large is no cap; it keeps the semaphore arithmetic in range.
const CAP_CEILING: usize = 1 << 20;

/// How many connections may be open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCap {
    /// As many as the file-descriptor limit leaves after a reserve (`max_connections = 0`).
    FromFdLimit,
    Fixed(usize),
}

/// The `[server]` limits, as durations and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: ConnectionCap,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// How long requests in flight may take to finish once shutdown has begun.
    pub shutdown_grace: Duration,
}

impl ServerLimits {
    pub fn from_config(c: &ServerConfig) -> Self {
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        Self {
            header_read_timeout: secs(c.header_read_timeout_secs),
            idle_timeout: secs(c.idle_timeout_secs),
            body_read_timeout: secs(c.body_read_timeout_secs),
            request_timeout: secs(c.request_timeout_secs),
            max_connections: match c.max_connections {
                0 => ConnectionCap::FromFdLimit,
                n => ConnectionCap::Fixed(n as usize),
            },
            max_header_bytes: c.max_header_bytes as usize,
            max_body_bytes: c.max_body_bytes as usize,
            shutdown_grace: secs(c.shutdown_grace_secs),
        }
    }

    /// The connection cap in force with these file descriptors; an error when the derived
    /// cap leaves no useful room.
    pub fn connection_cap(&self, fds: &FdBudget) -> Result<usize, String> {
        match self.max_connections {
            ConnectionCap::Fixed(n) => Ok(n.min(CAP_CEILING)),
            ConnectionCap::FromFdLimit => match fds.connection_room() {
                Some(n) if n >= 16 => Ok(n.min(CAP_CEILING)),
                room => Err(format!(
                    "the file-descriptor limit {} leaves room for {} connections \
                     ({} in use, {} kept in reserve); raise `ulimit -n` or set \
                     server.max_connections",
                    fds.limit,
                    room.unwrap_or(0),
                    fds.in_use,
                    fds.reserve()
                )),
            },
        }
    }
}

/// The process's file descriptors: its limit and how many are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    pub limit: usize,
    pub in_use: usize,
}

impl FdBudget {
    /// The soft RLIMIT_NOFILE and the descriptors open now.
    pub fn measure() -> Self {
        Self {
            limit: fd_limits().map_or(1024, |(soft, _)| soft),
            in_use: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()),
        }
    }

    /// Kept free of client connections for the store, LDAP, outbound HTTPS to the
    /// gateways, metadata fetches, files and refusals.
    pub fn reserve(&self) -> usize {
        (self.limit / 8).max(128)
    }

    /// Connections that fit before the reserve is touched.
    pub fn connection_room(&self) -> Option<usize> {
        self.limit.checked_sub(self.in_use + self.reserve())
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, so the cap derived from it is as high as
/// the system allows. Returns (before, after).
pub fn raise_fd_limit() -> io::Result<(usize, usize)> {
    let (soft, hard) = fd_limits()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    set_soft_fd_limit(hard)?;
    Ok((soft, fd_limits()?.0))
}

#[cfg(unix)]
fn fd_limits() -> io::Result<(usize, usize)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let size = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            CAP_CEILING
        } else {
            usize::try_from(v).unwrap_or(CAP_CEILING)
        }
    };
    Ok((size(l.rlim_cur), size(l.rlim_max)))
}

#[cfg(unix)]
fn set_soft_fd_limit(soft: usize) -> io::Result<()> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above; setrlimit only reads the struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return Err(io::Error::last_os_error());
        }
        l.rlim_cur = soft as libc::rlim_t;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn fd_limits() -> io::Result<(usize, usize)> {
    Err(io::Error::other("no RLIMIT_NOFILE here"))
}

#[cfg(not(unix))]
fn set_soft_fd_limit(_: usize) -> io::Result<()> {
    Err(io::Error::other("no RLIMIT_NOFILE here"))
}

/// Serves `router` over plain HTTP; see `serve_on`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_on(listener, router, limits, Transport::Plain, shutdown).await
}

/// Serves `router` on `listener` (over `transport`) until `shutdown` resolves, then stops
/// accepting, closes idle connections and lets the requests in flight finish, for
/// `shutdown_grace` at most. Handlers see the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    limits: &ServerLimits,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let fds = FdBudget::measure();
    let cap = limits.connection_cap(&fds).map_err(io::Error::other)?;
    match limits.max_connections {
        ConnectionCap::FromFdLimit => tracing::info!(
            fd_limit = fds.limit,
            fds_in_use = fds.in_use,
            fds_reserved = fds.reserve(),
            max_connections = cap,
            "connection cap derived from the file-descriptor limit"
        ),
        ConnectionCap::Fixed(_) => {
            let room = fds.connection_room().unwrap_or(0);
            if cap > room {
                tracing::warn!(
                    fd_limit = fds.limit,
                    fds_in_use = fds.in_use,
                    fds_reserved = fds.reserve(),
                    max_connections = cap,
                    "server.max_connections is above what the file-descriptor limit leaves; \
                     file descriptors may run out before the cap is reached"
                );
            } else {
                tracing::info!(
                    fd_limit = fds.limit,
                    max_connections = cap,
                    "connection cap"
                );
            }
        }
    }
    let slots = Arc::new(Semaphore::new(cap));
    let refusers = Arc::new(Semaphore::new(REFUSERS));
    let (stop, stopping) = watch::channel(());
    let mut refused = Throttle::new(LOG_EVERY);
    let mut failed = Throttle::new(LOG_EVERY);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                accept_failed(&e, &mut failed).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                tokio::spawn(connection(
                    stream,
                    addr,
                    router.clone(),
                    limits.clone(),
                    transport.clone(),
                    slot,
                    stopping.clone(),
                ));
            }
            Err(_) => {
                refuse(stream, &refusers);
                if let Some(n) = refused.hit(Instant::now()) {
                    tracing::warn!(
                        max_connections = cap,
                        refused = n,
                        "connections refused with 503: server.max_connections are open"
                    );
                }
            }
        }
    }
    // Closing the socket first makes a load balancer's next connection attempt fail at once
    // and go to another node, instead of queueing here behind the ones finishing.
    drop(listener);
    let _ = stop.send(());
    let open = cap - slots.available_permits();
    tracing::info!(
        connections = open,
        grace_secs = limits.shutdown_grace.as_secs(),
        "stopping: no new connections; letting requests in flight finish"
    );
    // Every connection holds one slot until it ends: all slots back means all done.
    let all_back = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
    match tokio::time::timeout(limits.shutdown_grace, all_back).await {
        Ok(_) => tracing::info!("stopped: every request in flight was answered"),
        Err(_) => tracing::warn!(
            connections = cap - slots.available_permits(),
            "stopped with requests still in flight after server.shutdown_grace_secs"
        ),
    }
    Ok(())
}

async fn accept_failed(e: &io::Error, log: &mut Throttle) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    // The peer gave up before we took the connection: nothing to wait for.
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    if let Some(n) = log.hit(Instant::now()) {
        if is_out_of_fds(e) {
            tracing::warn!(
                error = %e,
                times = n,
                "out of file descriptors: new connections wait in the listen queue until \
                 open ones close; lower server.max_connections or raise `ulimit -n`"
            );
        } else {
            tracing::warn!(error = %e, times = n, "accepting a connection failed");
        }
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

#[cfg(unix)]
fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

#[cfg(not(unix))]
fn is_out_of_fds(_: &io::Error) -> bool {
    false
}

/// Answers 503 and closes, in a task of its own so the accept loop never waits on a client.
fn refuse(mut stream: TcpStream, refusers: &Arc<Semaphore>) {
    let Ok(permit) = refusers.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            // Closing with the client's request unread would send a reset, which can
            // destroy our answer before the client reads it; so read until it closes.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// One connection, holding its slot until it ends: the TLS handshake first when serving
/// HTTPS, then the HTTP exchange.
async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    router: Router,
    limits: ServerLimits,
    transport: Transport,
    _slot: OwnedSemaphorePermit,
    stopping: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    match transport {
        Transport::Plain => exchange(stream, addr, router, limits, stopping).await,
        Transport::Tls(live) => {
            // A handshake is a client's first bytes: it gets the time a request head gets,
            // so a client that opens a connection and says nothing cannot hold the slot.
            let handshake = async {
                let ssl =
                    openssl::ssl::Ssl::new(live.acceptor().context()).map_err(io::Error::other)?;
                let mut tls =
                    tokio_openssl::SslStream::new(ssl, stream).map_err(io::Error::other)?;
                Pin::new(&mut tls)
                    .accept()
                    .await
                    .map_err(io::Error::other)?;
                Ok::<_, io::Error>(tls)
            };
            match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                Ok(Ok(tls)) => exchange(tls, addr, router, limits, stopping).await,
                Ok(Err(e)) => {
                    tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(client = %addr, "TLS handshake took too long"),
            }
        }
    }
}

/// The HTTP exchange on one connection: hyper parses and answers; this task closes it when it
/// idles too long or a request head takes too long, and asks hyper to finish up on shutdown.
async fn exchange<S>(
    stream: S,
    addr: SocketAddr,
    router: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let in_flight = activity.clone();
    let handover = Arc::new(HandOverSlot::default());
    let slot = handover.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(addr));
        let guard = InFlight::start(in_flight.clone());
        let router = router.clone();
        let slot = slot.clone();
        // Chunked framing, which the hand-over writes, is HTTP/1.1's (an HTTP/1.0 client
        // gets the stream from hyper, framed by the connection's end).
        let chunked = req.version() == axum::http::Version::HTTP_11;
        async move {
            let res = router.oneshot(req).await?;
            if chunked && res.extensions().get::<HandOver>().is_some() {
                // hyper never answers this request: the loop below takes the socket.
                slot.put(res, guard);
                return std::future::pending().await;
            }
            Ok::<_, Infallible>(res.map(|inner| {
                Body::new(Tracked {
                    inner,
                    _guard: guard,
                })
            }))
        }
    });
    // hyper's own header timer starts as soon as a connection is idle, so it would cut the
    // idle wait to the header time; set to both together it is only a backstop, and the
    // loop below applies each limit from the right moment.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout + limits.idle_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF))
        .serve_connection(io, service);
    let mut conn = conn;
    let mut finishing = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = Pin::new(&mut conn) => {
                if let Err(e) = result {
                    tracing::debug!(client = %addr, error = %e, "connection ended with an error");
                }
                return;
            }
            () = handover.ready.notified() => {
                if let Some((res, guard)) = handover.take() {
                    // hyper has read the request and written nothing for it; its buffers go
                    // with it, and the socket is ours to answer on.
                    let socket = conn.into_parts().io.into_inner().inner;
                    hand_over(socket, res, guard, stopping).await;
                    return;
                }
            }
            () = activity.changed.notified() => {}
            () = until(deadline) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(client = %addr, "closing a connection that sent no request in time");
                    return;
                }
            }
            _ = stopping.changed(), if !finishing => {
                finishing = true;
                Pin::new(&mut conn).graceful_shutdown();
            }
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Marks a response whose body lasts far longer than a request: the live wait page's event
/// stream (`web::wait`). The connection writes it itself, then closes, instead of leaving it
/// to hyper, which keeps an 8 KiB read and an 8 KiB write buffer for a connection's whole
/// life — with 10,000 browsers waiting, 160 MB of buffers that nothing uses.
#[derive(Debug, Clone, Copy)]
pub struct HandOver;

/// How long one write of a handed-over stream may wait for a client that reads nothing.
const STALLED_WRITE: Duration = Duration::from_secs(30);

/// Where the service leaves a `HandOver` response for its connection's loop.
#[derive(Default)]
struct HandOverSlot {
    taken: Mutex<Option<(Response, InFlight)>>,
    ready: Notify,
}

impl HandOverSlot {
    fn put(&self, res: Response, guard: InFlight) {
        *self.taken.lock().unwrap_or_else(PoisonError::into_inner) = Some((res, guard));
        self.ready.notify_one();
    }

    fn take(&self) -> Option<(Response, InFlight)> {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Writes a handed-over response as HTTP/1.1 with chunked framing (RFC 9112 §7.1), then
/// closes the connection: its head as the layers made it, each body frame as one chunk. Ends
/// early, with the closing chunk, when the server stops (the browser reconnects, in a farm to
/// another node), and at once when the client leaves or stops reading.
async fn hand_over<S>(
    mut socket: S,
    res: Response,
    guard: InFlight,
    mut stopping: watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = res.into_parts();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(name)
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    if !write_within(&mut socket, &head).await {
        return;
    }
    // Nothing more is expected from the client: a browser sends no second request on this
    // connection. Reading notices it leave (end of stream, an error), which ends the body and
    // frees what it holds (its per-user slot); bytes sent anyway end it too.
    let mut ignored = [0u8; 64];
    loop {
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)) => frame,
            _ = stopping.changed() => None,
            _ = socket.read(&mut ignored) => return,
        };
        let Some(Ok(frame)) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
        chunk.extend_from_slice(&data);
        chunk.extend_from_slice(b"\r\n");
        if !write_within(&mut socket, &chunk).await {
            return;
        }
    }
    drop(guard);
    if write_within(&mut socket, b"0\r\n\r\n").await {
        let _ = socket.shutdown().await;
    }
}

/// Writes and flushes `bytes`; `false` when the client is gone or reads nothing for
/// `STALLED_WRITE`.
async fn write_within<S: AsyncWrite + Unpin>(socket: &mut S, bytes: &[u8]) -> bool {
    let write = async {
        socket.write_all(bytes).await?;
        socket.flush().await
    };
    matches!(tokio::time::timeout(STALLED_WRITE, write).await, Ok(Ok(())))
}

/// Where a connection stands between requests, which says which timeout applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing received since the last answer (or since the connection opened).
    Idle(Instant),
    /// Part of a request head received, starting then.
    Head(Instant),
    /// Requests being answered (more than one only when pipelined).
    Busy(usize),
}

struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut p = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *p = f(*p);
        drop(p);
        // notify_one keeps a permit when the connection task is not waiting yet.
        self.changed.notify_one();
    }

    fn bytes_arrived(&self) {
        let idle = matches!(
            *self.phase.lock().unwrap_or_else(PoisonError::into_inner),
            Phase::Idle(_)
        );
        if idle {
            self.update(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(PoisonError::into_inner) {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Busy(_) => None,
        }
    }
}

/// Marks a request in flight from the moment hyper hands it over until its answer's body is
/// done (or dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.update(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, noting when bytes arrive so an idle connection's next request starts the
/// header clock.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_arrived();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// At most one log line per period for an event that may repeat thousands of times a second.
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    skipped: u64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            skipped: 0,
        }
    }

    /// `Some(n)` when a line is due: it stands for `n` events (this one and those skipped).
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.skipped += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.skipped) + 1)
            }
        }
    }
}

/// What a request's body reader saw: whether it is waiting on the client right now, and
/// whether it gave up because the client sent nothing for the body read timeout.
#[derive(Default)]
struct BodyWatch {
    waiting: AtomicBool,
    stalled: AtomicBool,
}

/// A request body that fails when the client sends nothing for `patience` while the
/// handler is waiting for it.
struct Patient {
    inner: Body,
    patience: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    watch: Arc<BodyWatch>,
}

#[derive(Debug, thiserror::Error)]
#[error("the client sent no body bytes for {0:?}")]
struct BodyStalled(Duration);

impl HttpBody for Patient {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                this.watch.waiting.store(true, Ordering::Relaxed);
                let patience = this.patience;
                // The clock runs only while the handler waits: bytes that arrived while it
                // was busy elsewhere are not late.
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(patience)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.watch.stalled.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(axum::Error::new(BodyStalled(patience)))));
                }
                Poll::Pending
            }
            ready => {
                this.watch.waiting.store(false, Ordering::Relaxed);
                this.timer = None;
                ready
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Router middleware: the body read timeout and the whole-request timeout.
///
/// A request whose client is too slow (the body stalls, or is still arriving when the time is
/// up) answers 408; one whose handler is too slow (a directory or store that does not answer)
/// answers 503 with Retry-After, since that is the server's state, not the client's fault.
/// Both close the connection: a half-read body leaves it unusable.
pub async fn deadlines(State(limits): State<ServerLimits>, req: Request, next: Next) -> Response {
    let watch = Arc::new(BodyWatch::default());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let req = req.map(|inner| {
        Body::new(Patient {
            inner,
            patience: limits.body_read_timeout,
            timer: None,
            watch: watch.clone(),
        })
    });
    let outcome = tokio::time::timeout(limits.request_timeout, next.run(req)).await;
    let client_too_slow = match &outcome {
        Ok(_) => watch.stalled.load(Ordering::Relaxed),
        Err(_) => watch.waiting.load(Ordering::Relaxed),
    };
    match outcome {
        Ok(res) if !client_too_slow => res,
        _ if client_too_slow => {
            tracing::debug!(%method, %path, "request body too slow; answered 408");
            closing(
                StatusCode::REQUEST_TIMEOUT,
                "The request took too long to arrive.",
            )
        }
        _ => {
            tracing::warn!(
                %method,
                %path,
                "a request took longer than server.request_timeout_secs; answered 503"
            );
            let mut res = closing(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server took too long to answer. Please try again.",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            res
        }
    }
}

fn closing(status: StatusCode, text: &'static str) -> Response {
    let mut res = (status, text).into_response();
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_warning_is_one_line_per_period_counting_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(1));
        for s in 1..10 {
            assert_eq!(t.hit(start + Duration::from_secs(s)), None);
        }
        assert_eq!(t.hit(start + Duration::from_secs(10)), Some(10));
        assert_eq!(t.hit(start + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn the_derived_cap_keeps_a_reserve_and_refuses_a_limit_too_small() {
        let limits = ServerLimits::from_config(&ServerConfig::default());
        assert_eq!(limits.max_connections, ConnectionCap::FromFdLimit);
        let fds = FdBudget {
            limit: 1024,
            in_use: 20,
        };
        assert_eq!(limits.connection_cap(&fds), Ok(1024 - 20 - 128));
        let big = FdBudget {
            limit: 65536,
            in_use: 20,
        };
        assert_eq!(limits.connection_cap(&big), Ok(65536 - 20 - 8192));
        let tiny = FdBudget {
            limit: 140,
            in_use: 20,
        };
        let err = limits.connection_cap(&tiny).expect_err("no room");
        assert!(err.contains("server.max_connections"), "{err}");
        let fixed = ServerLimits {
            max_connections: ConnectionCap::Fixed(500),
            ..limits
        };
        assert_eq!(fixed.connection_cap(&tiny), Ok(500));
    }
}
