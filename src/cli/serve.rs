//! `serve`: logging, the listener, the start-up banner, the housekeeping, and a graceful stop.

use std::io::IsTerminal;
use std::sync::Arc;

use tessera::clock::SystemClock;
use tessera::config::Config;

use super::{CliError, Result};

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour codes only for a person at a terminal: in a file or a journal they are noise
    // that breaks grep. The log goes to stderr, so that is the stream that decides.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn serve(config: Config) -> Result<()> {
    init_logging(&config);
    let stop = tessera::shutdown::stop_signal().map_err(|e| {
        CliError::Failed(format!("cannot install the SIGTERM / SIGINT handlers: {e}"))
    })?;
    // Before anything is created or bound: a certificate that cannot serve is a start-up
    // error naming the key to fix, not a listener that fails every handshake.
    let transport = tessera::tls::Transport::from_config(&config.server)?;
    let scheme = match transport {
        tessera::tls::Transport::Plain => "HTTP",
        tessera::tls::Transport::Tls(_) => "HTTPS",
    };
    // The connection cap is derived from this limit; the soft one is often 1,024 while the
    // hard one allows far more.
    match tessera::server::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(before, after, "raised the file-descriptor limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the file-descriptor limit"),
    }
    let listen = config.server.listen;
    let (state, first) = tessera::startup::build(config, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {listen}: {e}")))?;
    // Bound before the banner, which tells scripts the server is ready. With the embedded
    // store this process is the only one that can open it: CLI commands come in over the
    // admin socket instead. Redis they reach directly.
    let admin_socket = match state.config.store.backend {
        tessera::config::StoreKind::Embedded => match super::socket::bind(&state.config) {
            Ok((listener, path)) => {
                tokio::spawn(super::socket::serve(
                    listener,
                    state.config.clone(),
                    state.store.clone(),
                ));
                Some(path)
            }
            Err(e) => {
                // Serving matters more than the CLI: say why `tessera users ...` will fail.
                tracing::error!(error = %e, "cannot open the admin socket; CLI commands that use the store will not work while serving");
                None
            }
        },
        tessera::config::StoreKind::Redis => None,
    };
    let banner = tessera::startup::banner(&state, &first, scheme);
    // A closed stdout (a supervisor that stopped reading) must not take the server down,
    // which `println!` would do.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    let housekeeping = tessera::startup::spawn_housekeeping(&state);
    let limits = tessera::server::ServerLimits::from_config(&state.config.server);
    if let Some(addr) = state.config.server.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            CliError::Failed(format!(
                "cannot listen on {addr} (server.metrics_listen): {e}"
            ))
        })?;
        tracing::info!(%addr, "metrics served on their own listener");
        let router = tessera::web::metrics_app(state.clone());
        let limits = limits.clone();
        // No graceful stop of its own: a scrape in flight when the process exits is retried
        // by Prometheus at the next interval.
        tokio::spawn(async move {
            let stopped =
                tessera::server::serve(metrics, router, &limits, std::future::pending()).await;
            if let Err(e) = stopped {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let app = tessera::app(state);
    // Every store write is durable when it returns (redb commits with fsync, Redis answers
    // after applying it), so nothing is left to flush once the requests are done; a sign-in
    // waiting on a push is a record in the store and continues on whichever node the
    // browser's next refresh reaches.
    let served = tessera::server::serve_on(listener, app, &limits, transport, async {
        let signal = stop.await;
        tracing::info!(%signal, "stop requested");
    })
    .await;
    housekeeping.abort();
    if let Some(path) = admin_socket {
        super::socket::remove(&path);
    }
    Ok(served?)
}
