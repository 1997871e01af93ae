//! Runs `tessera serve` as a separate OS process (a farm node), configured by environment.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What a farm deployment provisions for a node in `dir`: token-signing keys, `mfa.key`, a
/// users file with `users` and the SP's metadata. Copy the directory for a second node.
pub fn provision_node(
    dir: &Path,
    sp_metadata: &str,
    users: Vec<tessera::directory::file::FileUser>,
) {
    let data = dir.join("tessera-data");
    tessera::keys::load_or_create(&data, &Default::default(), "Tessera farm").expect("keys");
    tessera::mfa::secrets::SecretBox::load_or_create(&data.join("mfa.key")).expect("mfa key");
    let users = tessera::directory::file::UsersFile { users };
    std::fs::write(
        data.join("users.toml"),
        toml::to_string(&users).expect("toml"),
    )
    .expect("users");
    std::fs::create_dir_all(dir.join("metadata")).expect("metadata dir");
    std::fs::write(dir.join("metadata/sp.xml"), sp_metadata).expect("sp metadata");
}

pub struct Node {
    pub base: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts the real binary in `dir` (its data dir, users file and metadata live there)
    /// with `env` on top of a listen address and public URL of its own.
    pub async fn start(dir: &Path, env: &[(&str, String)]) -> Node {
        let (port, base) = free_base();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.current_dir(dir)
            .arg("serve")
            .env("TESSERA__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA__SERVER__PUBLIC_URL", &base)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("tessera serve starts");
        let node = Node { base, child };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/healthz", node.base)).send().await
                && r.status().is_success()
            {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tessera node at {} did not become healthy", node.base);
    }
}

/// A free loopback port (bound and released) and the base URL of a server listening there.
pub fn free_base() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    (port, format!("http://127.0.0.1:{port}"))
}
