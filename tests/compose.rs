//! docker-compose.yml stays valid and in step with the code: it parses, names the peers the
//! tests start, and its Tessera environment is a configuration Tessera accepts.

use std::path::Path;

use serde_yaml::Value;

fn compose() -> Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
            .expect("docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML")
}

#[test]
fn compose_has_ldap_redis_with_aof_and_tessera() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for name in [
        "ldap",
        "redis",
        "redis-replica",
        "sentinel",
        "tessera",
        "tessera-2",
        "proxy",
    ] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    let redis_cmd: Vec<&str> = c["services"]["redis"]["command"]
        .as_sequence()
        .expect("redis command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        redis_cmd.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "{redis_cmd:?}"
    );
    assert!(
        redis_cmd
            .windows(2)
            .any(|w| w == ["--appendfsync", "always"]),
        "{redis_cmd:?}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for vol in c["services"]["ldap"]["volumes"]
        .as_sequence()
        .expect("ldap volumes")
    {
        let host = vol
            .as_str()
            .expect("volume")
            .split(':')
            .next()
            .expect("host path");
        assert!(root.join(host).is_file(), "{host} is mounted but missing");
    }
    assert!(root.join("deploy/ldap/Dockerfile").is_file());
    assert!(root.join("Dockerfile").is_file());
}

/// The environment of a Tessera service, as a config: `_FILE` secrets read from the file
/// compose would mount.
fn node_config(c: &Value, service: &str) -> tessera::config::Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let secret_file = c["secrets"]["ldap_bind_password"]["file"]
        .as_str()
        .expect("secret file");
    let env: Vec<(String, String)> = c["services"][service]["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{service} environment"))
        .iter()
        .map(|(k, v)| {
            let k = k.as_str().expect("key").to_owned();
            let mut v = v.as_str().expect("string value").to_owned();
            if k.ends_with("_FILE") {
                // Inside the container the secret is mounted; here read the same file.
                v = root.join(secret_file).display().to_string();
            }
            (k, v)
        })
        .collect();
    tessera::config::Config::load(None, env)
        .unwrap_or_else(|e| panic!("{service}: compose env is not a valid config: {e}"))
}

#[test]
fn compose_environment_is_a_valid_tessera_config() {
    let config = node_config(&compose(), "tessera");
    assert_eq!(config.directory.kind, tessera::config::DirectoryKind::Ldap);
    assert_eq!(config.store.backend, tessera::config::StoreKind::Redis);
    let ldap = config.directory.ldap.expect("ldap");
    assert_eq!(ldap.bind_password, "svc-tessera-Pass-1");
}

/// Two nodes, one IdP: the same store (through the sentinel, under the master name the
/// sentinel monitors), the same data volume (keys, mfa.key), behind a proxy whose config
/// names both and whose address is the one trusted proxy.
#[test]
fn two_nodes_share_the_sentinel_store_behind_the_proxy() {
    let c = compose();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let nodes = ["tessera", "tessera-2"];
    let configs: Vec<_> = nodes.iter().map(|n| node_config(&c, n)).collect();
    for (node, config) in nodes.iter().zip(&configs) {
        assert_eq!(config.store.redis_sentinels, ["sentinel:26379"], "{node}");
        assert_eq!(
            config.store.redis_master_name.as_deref(),
            Some("tessera"),
            "{node}"
        );
        assert_eq!(config.store.redis_prefix, configs[0].store.redis_prefix);
        assert_eq!(config.server.public_url, configs[0].server.public_url);
    }
    assert_eq!(
        bind_or_named_volumes(&c, "tessera"),
        bind_or_named_volumes(&c, "tessera-2"),
        "both nodes read the same keys"
    );

    // The sentinel watches the redis service under that name; the replica follows it.
    let sentinel_conf = std::fs::read_to_string(root.join("deploy/redis/sentinel.conf"))
        .expect("deploy/redis/sentinel.conf");
    assert!(
        sentinel_conf.contains("sentinel monitor tessera redis 6379 "),
        "{sentinel_conf}"
    );
    let replica: Vec<&str> = c["services"]["redis-replica"]["command"]
        .as_sequence()
        .expect("replica command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        replica
            .windows(3)
            .any(|w| w == ["--replicaof", "redis", "6379"]),
        "{replica:?}"
    );
    let sentinel_mounts = bind_mounts(&c, "sentinel");
    assert!(
        sentinel_mounts
            .iter()
            .any(|(h, _)| h == "./deploy/redis/sentinel.conf"),
        "{sentinel_mounts:?}"
    );

    // The proxy sends to both nodes on the port they listen on, and only it is trusted.
    let proxy = &c["services"]["proxy"];
    let context = proxy["build"].as_str().expect("proxy build");
    let nginx = std::fs::read_to_string(root.join(context).join("nginx.conf")).expect("nginx.conf");
    for (node, config) in nodes.iter().zip(&configs) {
        let upstream = format!("server {node}:{} ", config.server.listen.port());
        assert!(nginx.contains(&upstream), "nginx.conf lacks `{upstream}`");
        assert_eq!(
            config.server.trusted_proxies,
            [proxy["networks"]["default"]["ipv4_address"]
                .as_str()
                .expect("the proxy's fixed address")],
            "{node}"
        );
    }
    assert!(nginx.contains("X-Forwarded-For"), "{nginx}");
    assert!(root.join(context).join("Dockerfile").is_file());
}

/// Every `host:container` volume of a service, named or bound, as written.
fn bind_or_named_volumes(c: &Value, service: &str) -> Vec<String> {
    c["services"][service]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Docker (and compose's `depends_on: service_healthy`) judges Tessera by readiness — store
/// and directory reachable — not by the process merely running; the image can run the check,
/// and a stop leaves the requests in flight time to finish.
#[test]
fn compose_checks_tessera_readiness_and_gives_it_time_to_stop() {
    let c = compose();
    let tessera = &c["services"]["tessera"];
    let test: Vec<&str> = tessera["healthcheck"]["test"]
        .as_sequence()
        .expect("tessera healthcheck")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(test.iter().any(|a| a.ends_with("/readyz")), "{test:?}");
    let tool = test.get(1).expect("a command after CMD");
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
            .expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!(" {tool} ")) || dockerfile.contains(&format!(" {tool}\n")),
        "the image does not install {tool}"
    );
    assert!(dockerfile.contains("STOPSIGNAL SIGTERM"));
    let grace = tessera["stop_grace_period"]
        .as_str()
        .expect("stop_grace_period");
    let secs: u32 = grace.trim_end_matches('s').parse().expect("seconds");
    let config = tessera::config::Config::default();
    assert!(
        secs > config.server.shutdown_grace_secs,
        "docker would kill Tessera ({grace}) before its own grace period ends"
    );
}

/// The host side of each `host:container[:mode]` volume of a service that is a path
/// (named volumes have no `/` or `.` in front).
fn bind_mounts(c: &Value, service: &str) -> Vec<(String, String)> {
    c["services"][service]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with('.') || v.starts_with('/'))
        .map(|v| {
            let mut parts = v.split(':');
            let host = parts.next().expect("host").to_owned();
            let container = parts.next().expect("container").to_owned();
            (host, container)
        })
        .collect()
}

#[test]
fn the_metadata_folder_tessera_mounts_exists_where_the_image_reads_it() {
    let c = compose();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mounts = bind_mounts(&c, "tessera");
    for (host, _) in &mounts {
        assert!(root.join(host).exists(), "{host} is mounted but missing");
    }
    let (host, container) = mounts
        .iter()
        .find(|(h, _)| h.trim_start_matches("./") == "metadata")
        .expect("./metadata is mounted into the tessera container");
    assert!(root.join(host).join("README.md").is_file());
    // The image looks for trusts where compose puts them.
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(&format!("TESSERA__METADATA_DIR={container}")),
        "the Dockerfile's metadata dir is the mount target {container}"
    );
}

#[test]
fn the_shipped_metadata_folder_trusts_nothing_and_its_example_is_a_working_netscaler_pair() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("metadata");
    // README and *.example are not trusts: a fresh checkout trusts no SP.
    let shipped = tessera::rp::Registry::load(&folder, &[]).expect("the folder loads");
    assert!(shipped.all().is_empty(), "{:?}", shipped.all());

    // Copied as the README says, the example is a NetScaler trust with the preset's choices.
    let dir = tempfile::tempdir().expect("tempdir");
    for (from, to) in [
        ("netscaler-gateway.xml.example", "netscaler-gateway.xml"),
        ("netscaler-gateway.toml.example", "netscaler-gateway.toml"),
    ] {
        std::fs::copy(folder.join(from), dir.path().join(to)).expect("copy");
    }
    let reg = tessera::rp::Registry::load(dir.path(), &[]).expect("the example loads");
    let rp = reg.get("https://gateway.corp.example").expect("trusted");
    assert_eq!(rp.name, "NetScaler Gateway");
    assert_eq!(rp.sign, tessera::rp::SignChoice::Both);
    assert_eq!(
        rp.acs.first().map(|a| a.url.as_str()),
        Some("https://gateway.corp.example/cgi/samlauth")
    );
}
