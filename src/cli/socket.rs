//! The admin socket: how a `tessera` command reaches the running server when the embedded
//! store is held by `tessera serve`.
//!
//! redb locks its file for one process, and two processes writing one file would need a
//! second locking scheme of our own. So the server stays the store's only opener: it
//! listens on `admin.sock` in the data folder (a Unix socket, mode 0600, so only the
//! serving user and root can connect) and runs the CLI's operation through the same code
//! the CLI would have run, change log and actor included. The command line chooses the
//! route itself: it tries the store and comes here only when the store is in use.
//!
//! One connection carries one request: a JSON `Request`, the client's end of writing, then
//! one JSON `Reply`. The server reads at most `MAX_REQUEST` bytes within `READ_TIMEOUT`,
//! admits `MAX_CONNECTIONS` at once, and accepts only the operations `Operation` names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera::admin::Actor;
use tessera::config::Config;
use tessera::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::ops::{self, Operation};
use super::{CliError, Result};

/// Room for the largest metadata document `rp add` may carry, and no more.
const MAX_REQUEST: u64 = 1024 * 1024;
/// A reply is command output (a settings table, a user's sign-ins): small, but bounded.
const MAX_REPLY: u64 = 16 * 1024 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// An operation is a few store round trips (a rollover also signs): far below this.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// The login name of the person at the shell, for the change log (`cli:NAME`).
    user: String,
    op: Operation,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
enum Reply {
    /// What the command prints.
    Done { output: String },
    /// Why it did not run; the CLI prints it after `error:`.
    Refused { error: String },
}

pub fn path(config: &Config) -> PathBuf {
    config.server.data_dir.join("admin.sock")
}

/// Binds the socket. The store is already open in this process, so a socket file left at
/// the path belongs to a server that is gone and is replaced. The socket is made under a
/// private name, given mode 0600, and only then renamed into place, so nobody connects to
/// it while it is still open to all.
pub fn bind(config: &Config) -> std::io::Result<(UnixListener, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let path = path(config);
    let tmp = config
        .server
        .data_dir
        .join(format!(".admin.sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, &path)?;
    Ok((listener, path))
}

/// Answers CLI requests until the process ends.
pub async fn serve(listener: UnixListener, config: Config, store: Arc<dyn Store>) {
    let config = Arc::new(config);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Busy: the extra client is told nothing and retries; the server is not queued up.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("admin socket: too many connections; one refused");
            continue;
        };
        let (config, store) = (config.clone(), store.clone());
        tokio::spawn(async move {
            answer(stream, &config, store.as_ref()).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: UnixStream, config: &Config, store: &dyn Store) {
    let reply = match read_request(&mut stream).await {
        Ok((request, uid)) => {
            let user = login_name(&request.user);
            tracing::info!(user = %user, uid, op = ?op_name(&request.op), "admin socket: operation");
            let actor = Actor {
                name: format!("cli:{user}"),
                client_ip: "local".into(),
            };
            let ctx = ops::Ctx {
                config,
                store,
                actor: &actor,
            };
            match tokio::time::timeout(RUN_TIMEOUT, ops::exec(request.op, &ctx)).await {
                Ok(Ok(output)) => Reply::Done { output },
                Ok(Err(e)) => Reply::Refused {
                    error: e.to_string(),
                },
                Err(_) => Reply::Refused {
                    error: "the server did not finish the operation in time".into(),
                },
            }
        }
        Err(error) => {
            tracing::warn!(%error, "admin socket: request refused");
            Reply::Refused { error }
        }
    };
    if let Ok(bytes) = serde_json::to_vec(&reply) {
        let _ = tokio::time::timeout(READ_TIMEOUT, async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
    }
}

async fn read_request(stream: &mut UnixStream) -> std::result::Result<(Request, u32), String> {
    let uid = stream
        .peer_cred()
        .map_err(|e| format!("cannot tell who connected: {e}"))?
        .uid();
    // The socket's mode already keeps others out; this also holds if the mode is loosened.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    if uid != own && uid != 0 {
        return Err(format!("uid {uid} may not use the admin socket"));
    }
    let mut bytes = Vec::new();
    let mut limited = stream.take(MAX_REQUEST + 1);
    match tokio::time::timeout(READ_TIMEOUT, limited.read_to_end(&mut bytes)).await {
        Err(_) => return Err("request not sent in time".into()),
        Ok(Err(e)) => return Err(format!("reading the request: {e}")),
        Ok(Ok(_)) if bytes.len() as u64 > MAX_REQUEST => {
            return Err(format!("request larger than {MAX_REQUEST} bytes"));
        }
        Ok(Ok(_)) => {}
    }
    let request = serde_json::from_slice(&bytes).map_err(|e| format!("not a request: {e}"))?;
    Ok((request, uid))
}

/// The name recorded in the change log: what the client says, when it looks like a login.
fn login_name(claimed: &str) -> &str {
    let plain = claimed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if plain && (1..=64).contains(&claimed.len()) {
        claimed
    } else {
        "unknown"
    }
}

fn op_name(op: &Operation) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Sends `op` to the running server and returns what it printed.
pub async fn send(config: &Config, actor: &Actor, op: Operation) -> Result<String> {
    let path = path(config);
    let unreachable =
        |e: std::io::Error| CliError::Failed(format!("the server on {}: {e}", path.display()));
    let mut stream = UnixStream::connect(&path).await.map_err(|e| {
        CliError::NoServer(format!(
            "the store {} is in use by another process, and no server answers on {}: {e} \
             (another `tessera` command may hold it; try again)",
            config.store_path().display(),
            path.display()
        ))
    })?;
    let user = actor.name.strip_prefix("cli:").unwrap_or(&actor.name);
    let request = serde_json::to_vec(&Request {
        user: user.to_owned(),
        op,
    })
    .map_err(|e| CliError::Failed(e.to_string()))?;
    if request.len() as u64 > MAX_REQUEST {
        return Err(CliError::Invalid(format!(
            "the request is larger than the server accepts ({MAX_REQUEST} bytes)"
        )));
    }
    stream.write_all(&request).await.map_err(unreachable)?;
    stream.shutdown().await.map_err(unreachable)?;
    let mut bytes = Vec::new();
    let mut limited = stream.take(MAX_REPLY);
    tokio::time::timeout(RUN_TIMEOUT + READ_TIMEOUT, limited.read_to_end(&mut bytes))
        .await
        .map_err(|_| CliError::Failed("the server did not answer in time".into()))?
        .map_err(unreachable)?;
    match serde_json::from_slice(&bytes) {
        Ok(Reply::Done { output }) => Ok(output),
        Ok(Reply::Refused { error }) => Err(CliError::Remote(error)),
        Err(e) => Err(CliError::Failed(format!(
            "the server's answer on {} is not understood: {e}",
            path.display()
        ))),
    }
}

/// Removes the socket file when the server stops, so the next command does not find a
/// socket nobody answers on.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}
