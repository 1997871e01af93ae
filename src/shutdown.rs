//! Turns the signals that ask a server to stop (SIGTERM from docker, systemd or Kubernetes;
//! SIGINT from Ctrl-C) into the future that starts a graceful stop.

use std::fmt;
use std::future::Future;
use std::io;

/// Which request to stop arrived; logged so an admin can tell a supervisor from a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Terminate,
    Interrupt,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// Installs the handlers now and returns a future that resolves at the first stop signal.
///
/// Installing before the listener is announced matters: from then on the default action
/// (dying with 143) no longer applies, so a SIGTERM that arrives during start-up still
/// stops the server cleanly instead of killing it.
#[cfg(unix)]
pub fn stop_signal() -> io::Result<impl Future<Output = StopSignal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => StopSignal::Terminate,
            _ = int.recv() => StopSignal::Interrupt,
        }
    })
}

/// Elsewhere only Ctrl-C exists.
#[cfg(not(unix))]
pub fn stop_signal() -> io::Result<impl Future<Output = StopSignal>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        StopSignal::Interrupt
    })
}
