//! `LdapDirectory` against a real OpenLDAP slapd with AD-like data (tests/support/slapd.rs).

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::slapd::{Slapd, free_port, password_of, person_dn};
use tessera::directory::ldap::{LdapDirectory, LdapSettings};
use tessera::directory::{AuthError, Directory};

fn directory(settings: LdapSettings) -> LdapDirectory {
    LdapDirectory::new(settings).expect("valid LDAP settings")
}

#[tokio::test]
async fn alice_signs_in_with_every_login_form() {
    let slapd = Slapd::start();
    let dir = directory(LdapSettings {
        extra_attributes: vec!["title".into(), "objectGUID".into()],
        upn_suffixes: vec!["corp.example".into()],
        ..slapd.settings()
    });
    for login in [
        "alice",
        "alice@corp.example",
        "CORP\\alice",
        "ALICE@Corp.Example",
    ] {
        let user = dir
            .authenticate(login, &password_of("alice"))
            .await
            .unwrap_or_else(|e| panic!("{login}: {e:?}"));
        assert_eq!(user.username, "alice", "{login}");
        assert_eq!(user.dn, person_dn("alice"));
        assert_eq!(user.upn.as_deref(), Some("alice@corp.example"));
        assert_eq!(user.mail.as_deref(), Some("alice@corp.example"));
        assert_eq!(user.display_name.as_deref(), Some("Alice Ærøskøbing"));
        assert_eq!(user.mobile.as_deref(), Some("+1 555 0100 30"));
        assert_eq!(user.telephone.as_deref(), Some("+1 555 0100 31"));
        let mut groups = user.groups.clone();
        groups.sort();
        assert_eq!(groups, ["Gateway Users", "Staff"]);
        let attrs = &user.attributes;
        assert_eq!(attrs["samaccountname"], ["alice"]);
        assert_eq!(attrs["displayname"], ["Alice Ærøskøbing"]);
        assert_eq!(attrs["title"], ["Engineer"]);
        assert_eq!(attrs["objectguid"], ["3q2+7wEjRWeJq83vASNFZw=="]);
        assert_eq!(attrs["memberof"].len(), 2);
        assert!(
            attrs.keys().all(|k| *k == k.to_ascii_lowercase()),
            "{attrs:?}"
        );
        // Account-state attributes are read for the decision, not reported as claims.
        assert!(!attrs.contains_key("pwdaccountlockedtime"));
    }
}

#[tokio::test]
async fn upn_login_and_suffix_rules() {
    let slapd = Slapd::start();
    let dir = directory(LdapSettings {
        upn_suffixes: vec!["corp.example".into()],
        ..slapd.settings()
    });
    // UPN prefix differs from sAMAccountName, as in many AD forests.
    let dan = dir
        .authenticate("dan.brown@corp.example", &password_of("dbrown"))
        .await
        .expect("dan by UPN");
    assert_eq!(dan.username, "dbrown");
    // carol's UPN suffix is not accepted here, but her short name is.
    assert_eq!(
        dir.authenticate("carol@sales.corp.example", &password_of("carol"))
            .await,
        Err(AuthError::InvalidCredentials)
    );
    let carol = dir
        .authenticate("carol", &password_of("carol"))
        .await
        .expect("carol");
    assert_eq!(carol.groups, ["Staff"]);
    // A machine account never signs in through the user filter.
    assert_eq!(
        dir.authenticate("WS01$", &password_of("WS01$")).await,
        Err(AuthError::InvalidCredentials)
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_read_the_same() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    let wrong = dir
        .authenticate("wrongpw1", "not-the-password")
        .await
        .expect_err("wrong password");
    assert_eq!(wrong, AuthError::InvalidCredentials);
    let unknown = dir
        .authenticate("nobody", "whatever-1")
        .await
        .expect_err("unknown user");
    assert_eq!(unknown, AuthError::InvalidCredentials);
    assert_eq!(wrong.user_message(), unknown.user_message());
    // The bad bind was real: ppolicy counted it.
    assert_eq!(
        slapd
            .read_attr(&person_dn("wrongpw1"), "pwdFailureTime")
            .len(),
        1
    );
}

#[tokio::test]
async fn empty_password_is_refused_without_touching_the_server() {
    let slapd = Slapd::start();
    // Only a dead server: any directory traffic would surface as Unavailable.
    let dead = directory(LdapSettings {
        servers: format!("ldap://127.0.0.1:{}", free_port()),
        ..slapd.settings()
    });
    assert_eq!(
        dead.authenticate("alice", "").await,
        Err(AuthError::EmptyPassword)
    );
    let live = directory(slapd.settings());
    assert_eq!(
        live.authenticate("alice", "").await,
        Err(AuthError::EmptyPassword)
    );
    assert_eq!(
        AuthError::EmptyPassword.user_message(),
        AuthError::InvalidCredentials.user_message()
    );
    // alice's entry saw no bind at all (no anonymous "success", no failure counted).
    assert!(
        slapd
            .read_attr(&person_dn("alice"), "pwdFailureTime")
            .is_empty()
    );
}

#[tokio::test]
async fn filter_injection_never_signs_anybody_in() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    let logins = [
        "*",
        "alice*",
        "*alice",
        "alice)(|(uid=*",
        "*)(uid=*))(|(uid=*",
        "alice)(&",
        "(uid=*)",
        "\\2a",
        "\\5c2a",
        "alice\0",
        "alice\0)(uid=*",
        "alice\\",
        "alice@*",
        "*@corp.example",
    ];
    for login in logins {
        for password in [password_of("alice").as_str(), "*", "x)(uid=*"] {
            let result = dir.authenticate(login, password).await;
            assert_eq!(
                result,
                Err(AuthError::InvalidCredentials),
                "login {login:?} / password {password:?}"
            );
        }
        assert_eq!(dir.lookup(login).await, Ok(None), "lookup {login:?}");
    }
    // alice herself still works afterwards.
    dir.authenticate("alice", &password_of("alice"))
        .await
        .expect("alice");
}

#[tokio::test]
async fn disabled_account_is_refused_before_any_bind() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    assert_eq!(
        dir.authenticate("disabled1", &password_of("disabled1"))
            .await,
        Err(AuthError::AccountDisabled)
    );
    // A wrong password gives the same answer, and ppolicy saw no bind: no bind was made.
    assert_eq!(
        dir.authenticate("disabled1", "wrong-password").await,
        Err(AuthError::AccountDisabled)
    );
    assert!(
        slapd
            .read_attr(&person_dn("disabled1"), "pwdFailureTime")
            .is_empty()
    );
}

#[tokio::test]
async fn locked_and_must_change_accounts() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    assert_eq!(
        dir.authenticate("locked1", &password_of("locked1")).await,
        Err(AuthError::AccountLocked)
    );
    assert_eq!(
        dir.authenticate("mustchange1", &password_of("mustchange1"))
            .await,
        Err(AuthError::MustChangePassword)
    );
    // pwdReset only matters once the password is proven.
    assert_eq!(
        dir.authenticate("mustchange1", "wrong-password").await,
        Err(AuthError::InvalidCredentials)
    );
}

#[tokio::test]
async fn five_bad_passwords_lock_the_account() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    for attempt in 1..=5 {
        assert_eq!(
            dir.authenticate("lockme1", &format!("wrong-{attempt}"))
                .await,
            Err(AuthError::InvalidCredentials),
            "attempt {attempt}"
        );
    }
    assert_eq!(
        slapd
            .read_attr(&person_dn("lockme1"), "pwdAccountLockedTime")
            .len(),
        1,
        "ppolicy locked the entry"
    );
    assert_eq!(
        dir.authenticate("lockme1", &password_of("lockme1")).await,
        Err(AuthError::AccountLocked)
    );
}

#[tokio::test]
async fn ldaps_with_the_ca_file() {
    let slapd = Slapd::start();
    for url in [
        slapd.ldaps_url(),
        format!("ldaps://localhost:{}", slapd.ldaps_port()),
    ] {
        let dir = directory(LdapSettings {
            servers: url.clone(),
            ..slapd.settings()
        });
        let user = dir
            .authenticate("alice@corp.example", &password_of("alice"))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert_eq!(user.username, "alice");
    }
    // Without the CA the server's certificate is not trusted: the directory is unavailable.
    let untrusted = directory(LdapSettings {
        servers: slapd.ldaps_url(),
        ca_file: None,
        ..slapd.settings()
    });
    assert!(matches!(
        untrusted.authenticate("alice", &password_of("alice")).await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn starttls_with_the_ca_file() {
    let slapd = Slapd::start();
    let dir = directory(LdapSettings {
        starttls: true,
        ..slapd.settings()
    });
    let user = dir
        .authenticate("bob", &password_of("bob"))
        .await
        .expect("bob over StartTLS");
    assert_eq!(user.groups, ["Gateway Users"]);
}

#[tokio::test]
async fn failover_skips_a_dead_first_server() {
    let slapd = Slapd::start();
    let dead = free_port();
    let dir = directory(LdapSettings {
        servers: format!("ldap://127.0.0.1:{dead}; {}", slapd.ldap_url()),
        // One connection each, so the second sign-in must open new ones too.
        pool_size: 1,
        ..slapd.settings()
    });
    for _ in 0..3 {
        dir.authenticate("alice", &password_of("alice"))
            .await
            .expect("alice via the second server");
    }
    // Every server down: a clear Unavailable, not a hang or a wrong answer.
    let all_dead = directory(LdapSettings {
        servers: format!("ldap://127.0.0.1:{dead};ldap://127.0.0.1:{}", free_port()),
        ..slapd.settings()
    });
    let err = all_dead
        .authenticate("alice", &password_of("alice"))
        .await
        .expect_err("nothing answers");
    assert!(
        matches!(err, AuthError::Unavailable(ref d) if d.contains(&dead.to_string())),
        "{err:?}"
    );
}

/// A "server" that accepts TCP connections and never answers (an overloaded or wedged DC).
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[tokio::test]
async fn failover_skips_a_server_that_accepts_but_never_answers() {
    let slapd = Slapd::start();
    let dir = directory(LdapSettings {
        servers: format!("ldap://127.0.0.1:{};{}", silent_server(), slapd.ldap_url()),
        op_timeout_ms: 500,
        pool_size: 2,
        ..slapd.settings()
    });
    let started = Instant::now();
    dir.authenticate("alice", &password_of("alice"))
        .await
        .expect("alice despite the wedged first server");
    assert!(started.elapsed() >= Duration::from_millis(500));
    // The wedged server is remembered as down: later sign-ins (opening new connections for
    // the second pool slot) do not wait on it again.
    let started = Instant::now();
    for uid in ["bob", "carol", "alice", "bob"] {
        dir.authenticate(uid, &password_of(uid)).await.expect(uid);
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn lookup_needs_no_password() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    let alice = dir
        .lookup("CORP\\alice")
        .await
        .expect("lookup")
        .expect("alice exists");
    assert_eq!(alice.dn, person_dn("alice"));
    assert_eq!(alice.mobile.as_deref(), Some("+1 555 0100 30"));
    assert_eq!(dir.lookup("nobody").await, Ok(None));
    // lookup reports; it does not enforce account state.
    assert!(dir.lookup("disabled1").await.expect("lookup").is_some());
}

#[tokio::test]
async fn admin_search_matches_prefixes_and_display_names_and_escapes_input() {
    let slapd = Slapd::start();
    let dir = directory(slapd.settings());
    let names = |users: Vec<tessera::directory::UserInfo>| {
        let mut n: Vec<String> = users.into_iter().map(|u| u.username).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(dir.search("ali", 10).await.expect("search")),
        vec!["alice"]
    );
    assert_eq!(
        names(dir.search("Builder", 10).await.expect("search")),
        vec!["bob"]
    );
    assert_eq!(
        names(dir.search("carol@", 10).await.expect("search")),
        vec!["carol"]
    );
    // Filter syntax in the text is data, not filter: no match, no error, no widening.
    assert!(dir.search("*", 10).await.expect("search").is_empty());
    assert!(dir.search("a)(uid=*", 10).await.expect("search").is_empty());
    assert!(dir.search("\\2a", 10).await.expect("search").is_empty());
    // The limit holds (the server's size limit; rc 4 is not an error).
    assert_eq!(dir.search("", 2).await.expect("search").len(), 2);
}

#[tokio::test]
async fn direct_bind_mode() {
    let slapd = Slapd::start();
    let dir = directory(LdapSettings {
        bind_dn: String::new(),
        bind_password: String::new(),
        direct_bind: Some(format!("uid={{user}},ou=people,{}", slapd.base_dn())),
        ..slapd.settings()
    });
    let alice = dir
        .authenticate("alice@corp.example", &password_of("alice"))
        .await
        .expect("alice by direct bind");
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name.as_deref(), Some("Alice Ærøskøbing"));
    assert_eq!(alice.groups.len(), 2);
    assert_eq!(
        dir.authenticate("wrongpw2", "wrong-password").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        dir.authenticate("nobody", "whatever-1").await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        dir.authenticate("alice,ou=people", &password_of("alice"))
            .await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        dir.authenticate("disabled1", &password_of("disabled1"))
            .await,
        Err(AuthError::AccountDisabled)
    );
    assert!(matches!(
        dir.lookup("alice").await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn added_users_sign_in() {
    let slapd = Slapd::start();
    slapd.add_user("erin", "erin-Pass-9", "mobile: +1 555 0100 99");
    let dir = directory(slapd.settings());
    let erin = dir
        .authenticate("erin@corp.example", "erin-Pass-9")
        .await
        .expect("erin");
    assert_eq!(erin.mobile.as_deref(), Some("+1 555 0100 99"));
    assert!(erin.groups.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_sign_ins() {
    let slapd = Slapd::start();
    let dir = Arc::new(directory(slapd.settings()));
    let users = ["alice", "bob", "carol", "dbrown"];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let dir = dir.clone();
        let uid = users[i % users.len()];
        tasks.spawn(async move { (uid, dir.authenticate(uid, &password_of(uid)).await) });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        let (uid, result) = joined.expect("task");
        let user = result.unwrap_or_else(|e| panic!("{uid}: {e:?}"));
        assert_eq!(user.username, uid);
        ok += 1;
    }
    assert_eq!(ok, 100);
}

/// Log output of the current thread, for asserting what an admin reads in the log.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn no_such_user_is_logged_with_the_filter_that_found_nobody() {
    let slapd = Slapd::start();
    // An OpenLDAP-style filter that names an object class no entry has: every sign-in ends
    // as "no such user", and the log must say which filter was asked.
    let dir = directory(LdapSettings {
        user_filter: "(&(objectClass=posixAccount)(uid={user}))".into(),
        ..slapd.settings()
    });
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let refused = dir.authenticate("alice", &password_of("alice")).await;
    assert_eq!(refused, Err(AuthError::InvalidCredentials));
    let text = log.text();
    assert!(text.contains("no such user"), "{text}");
    assert!(
        text.contains("(&(objectClass=posixAccount)(uid=alice))"),
        "the filter used is logged: {text}"
    );
    assert!(text.contains("dc=corp,dc=example"), "and the base: {text}");
    assert!(!text.contains(&password_of("alice")), "{text}");
}

/// A sign-in looks its user up once: `find` (which counts the attempt under the user's
/// canonical name) keeps the entry, and the password is checked against that entry. Shown by
/// changing the entry in between: the sign-in reports what `find` read, a fresh
/// `authenticate` what the directory holds now.
#[tokio::test]
async fn a_sign_in_searches_for_its_user_once() {
    let slapd = Slapd::start();
    slapd.add_user("erin", "Erin-pass-1", "mail: erin@old.example");
    let dir = directory(slapd.settings());
    let found = dir
        .find("CORP\\erin")
        .await
        .expect("find")
        .expect("erin exists");
    assert_eq!(found.name, "erin");
    slapd.replace_attr(&person_dn("erin"), "mail", "erin@new.example");
    let user = dir
        .authenticate_found("CORP\\erin", "Erin-pass-1", Some(found))
        .await
        .expect("erin signs in");
    assert_eq!(
        user.mail.as_deref(),
        Some("erin@old.example"),
        "no second search"
    );
    let fresh = dir
        .authenticate("erin", "Erin-pass-1")
        .await
        .expect("erin again");
    assert_eq!(fresh.mail.as_deref(), Some("erin@new.example"));
    let found_again = || async { dir.find("erin").await.expect("find").expect("erin") };
    // The entry does not stand in for the password: a wrong one is still refused.
    assert!(matches!(
        dir.authenticate_found("erin", "wrong", Some(found_again().await))
            .await,
        Err(AuthError::InvalidCredentials)
    ));
    // Nor for an empty one (RFC 4513 §5.1.2), refused before any bind.
    assert!(matches!(
        dir.authenticate_found("erin", "", Some(found_again().await))
            .await,
        Err(AuthError::EmptyPassword)
    ));
}
