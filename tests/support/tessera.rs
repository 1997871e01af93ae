//! Runs a real Tessera (the library's router on a real socket) with a temp data dir.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;
use tessera::clock::{Clock, SystemClock};
use tessera::config::Config;
use tessera::keys::KeyMaterial;

/// Step one: a bound port, a data dir with keys, so our metadata can be handed to an SP
/// before Tessera itself starts (the SP's metadata then goes into our metadata dir).
pub struct TesseraBuilder {
    pub dir: TempDir,
    listener: std::net::TcpListener,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
}

pub struct Tessera {
    pub base: String,
    pub state: tessera::AppState,
    pub dir: TempDir,
    task: tokio::task::JoinHandle<()>,
    /// The store purge `serve` runs too.
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.task.abort();
        self.housekeeping.abort();
    }
}

impl TesseraBuilder {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut config = Config::default();
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], port));
        config.server.public_url = format!("http://127.0.0.1:{port}");
        config.server.data_dir = dir.path().join("data");
        config.metadata_dir = dir.path().join("metadata");
        std::fs::create_dir_all(&config.metadata_dir).expect("metadata dir");
        Self {
            dir,
            listener,
            config,
            clock: Arc::new(SystemClock),
        }
    }

    pub fn base(&self) -> String {
        self.config.server.public_url.clone()
    }

    /// Loads (creating on first call) the token-signing key the server will use.
    pub fn keys(&self) -> KeyMaterial {
        tessera::keys::load_or_create(
            &self.config.server.data_dir,
            &self.config.idp.signing,
            "Tessera test",
        )
        .expect("keys")
        .0
    }

    pub fn idp_metadata(&self) -> String {
        tessera::saml::metadata::idp_metadata(
            &tessera::startup::endpoints(&self.config),
            &self.keys(),
            None,
        )
        .expect("metadata")
    }

    pub fn cert_pem_path(&self) -> PathBuf {
        let p = self.dir.path().join("idp.crt");
        std::fs::write(&p, self.keys().cert_pem()).expect("write cert");
        p
    }

    /// Registers an SP from metadata, with an optional sidecar (RP options as TOML).
    pub fn add_rp(&self, name: &str, metadata_xml: &str, sidecar_toml: &str) {
        let md = self.config.metadata_dir.join(format!("{name}.xml"));
        std::fs::write(&md, metadata_xml).expect("write metadata");
        std::fs::write(md.with_extension("toml"), sidecar_toml).expect("write sidecar");
    }

    pub fn add_user(&self, users: &[tessera::directory::file::FileUser]) {
        let file = tessera::directory::file::UsersFile {
            users: users.to_vec(),
        };
        std::fs::create_dir_all(&self.config.server.data_dir).expect("data dir");
        std::fs::write(
            self.config.users_file(),
            toml::to_string(&file).expect("toml"),
        )
        .expect("users file");
    }

    pub async fn start(self) -> Tessera {
        self.config.validate().expect("test config valid");
        let base = self.base();
        let (state, _first) = tessera::startup::build(self.config, self.clock)
            .await
            .expect("tessera starts");
        self.listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(self.listener).expect("listener");
        let limits = tessera::server::ServerLimits::from_config(&state.config.server);
        let app = tessera::app(state.clone());
        let housekeeping = tessera::startup::spawn_housekeeping(&state);
        let task = tokio::spawn(async move {
            let _ = tessera::server::serve(listener, app, &limits, std::future::pending()).await;
        });
        Tessera {
            base,
            state,
            dir: self.dir,
            task,
            housekeeping,
        }
    }
}

/// A user for the users file, password hashed.
pub fn file_user(name: &str, password: &str) -> tessera::directory::file::FileUser {
    tessera::directory::file::FileUser {
        username: name.into(),
        password_hash: tessera::directory::file::hash_password(password).expect("hash"),
        upn: Some(format!("{name}@corp.example")),
        mail: Some(format!("{name}@corp.example")),
        groups: vec!["Gateway Users".into(), "Staff".into()],
        ..Default::default()
    }
}
