//! NameIDPolicy over HTTP against a real Tessera (SAML core §3.4.1.1, §8.3): transient per
//! session and SP, pairwise persistent identifiers that survive a restart and agree across a
//! farm, emailAddress from the directory, and InvalidNameIDPolicy (signed, checked with
//! xmlsec1) for what a trust does not allow. Last, mod_auth_mellon asking for transient.

mod support {
    pub mod browser;
    pub mod mellon;
    pub mod process;
    pub mod redis;
    pub mod slapd;
    pub mod sp;
    pub mod tessera;
    pub mod xmlsec;
}

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use support::browser::{Browser, form_action, input_value, join};
use support::mellon::{MellonOptions, MellonSp};
use support::process::{Node, provision_node};
use support::redis::RedisServer;
use support::slapd::Slapd;
use support::sp::TestSp;
use support::tessera::{Tessera, TesseraBuilder, file_user};
use support::xmlsec::{Part, verify};
use tessera::config::DirectoryKind;

const PW: &str = "Corr3ct horse!";
const TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
const X509: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";
const INVALID_POLICY: &str = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy";
const REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";

struct Setup {
    idp: Tessera,
    /// Two ordinary SPs (every format allowed).
    p: TestSp,
    q: TestSp,
    /// `name_id_formats = ["unspecified"]`.
    narrow: TestSp,
    /// Configured default format persistent.
    pd: TestSp,
    cert: PathBuf,
}

async fn setup() -> Setup {
    let mut b = TesseraBuilder::new();
    b.config.mfa.enabled = false;
    let mut alice = file_user("alice", PW);
    alice.mail = Some("alice.mail@corp.example".into());
    let mut carol = file_user("carol", PW);
    carol.mail = None;
    b.add_user(&[alice, file_user("bob", PW), carol]);
    let (p, q, narrow, pd) = (
        TestSp::new("p"),
        TestSp::new("q"),
        TestSp::new("narrow"),
        TestSp::new("pd"),
    );
    b.add_rp("p", &p.metadata(false), "");
    b.add_rp("q", &q.metadata(false), "");
    b.add_rp(
        "narrow",
        &narrow.metadata(false),
        "name_id_formats = [\"unspecified\"]\n",
    );
    b.add_rp(
        "pd",
        &pd.metadata(false),
        &format!("name_id_format = \"{PERSISTENT}\"\n"),
    );
    let cert = b.cert_pem_path();
    let idp = b.start().await;
    Setup {
        idp,
        p,
        q,
        narrow,
        pd,
        cert,
    }
}

/// A NameIDPolicy element.
fn policy(format: &str, allow_create: bool) -> String {
    format!(r#"<samlp:NameIDPolicy Format="{format}" AllowCreate="{allow_create}"/>"#)
}

/// A Redirect-binding AuthnRequest from `sp` carrying `policy_xml` after its Issuer.
fn ask(sp: &TestSp, policy_xml: &str) -> String {
    let xml =
        sp.xml(&sp.req())
            .replacen("</saml:Issuer>", &format!("</saml:Issuer>{policy_xml}"), 1);
    assert!(xml.contains(policy_xml), "policy inserted: {xml}");
    sp.redirect_query(&xml, None, None)
}

/// Sends the request; signs in as `user` when there is no SSO session yet. The final page.
async fn send(browser: &Browser, base: &str, query: &str, user: &str) -> (StatusCode, String) {
    let (url, status, page) = browser.get(&format!("{base}/adfs/ls/?{query}")).await;
    if status != StatusCode::OK || !page.contains("name=\"password\"") {
        return (status, page);
    }
    let (_, status, page) = browser.sign_in(&url, &page, user, PW).await;
    (status, page)
}

/// The Response the auto-POST page carries.
async fn response(browser: &Browser, base: &str, query: &str, user: &str) -> String {
    let (status, page) = send(browser, base, query, user).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    Browser::post_form(&page).xml()
}

#[derive(Debug, PartialEq, Eq)]
struct Issued {
    format: String,
    value: String,
    name_qualifier: Option<String>,
    sp_name_qualifier: Option<String>,
}

fn attr_in(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let end = tag[at..].find('"')?;
    Some(tag[at..at + end].to_owned())
}

/// The NameID of a success Response.
fn name_id(xml: &str) -> Issued {
    assert!(
        statuses(xml).contains(&"urn:oasis:names:tc:SAML:2.0:status:Success".to_owned()),
        "{xml}"
    );
    let start = xml.find("<saml:NameID ").expect("NameID");
    let close = xml[start..].find('>').expect("tag end") + start;
    let end = xml[close..].find("</saml:NameID>").expect("NameID end") + close;
    let tag = &xml[start..close];
    Issued {
        format: attr_in(tag, "Format").expect("Format"),
        value: xml[close + 1..end].to_owned(),
        name_qualifier: attr_in(tag, "NameQualifier"),
        sp_name_qualifier: attr_in(tag, "SPNameQualifier"),
    }
}

fn statuses(xml: &str) -> Vec<String> {
    xml.split("<samlp:StatusCode Value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap_or_default().to_owned())
        .collect()
}

/// A signed Requester / InvalidNameIDPolicy answer carrying no assertion.
fn assert_invalid_policy(xml: &str, cert: &Path) {
    assert_eq!(
        statuses(xml),
        [REQUESTER, INVALID_POLICY],
        "InvalidNameIDPolicy under Requester: {xml}"
    );
    assert!(!xml.contains("Assertion"), "no assertion: {xml}");
    verify(xml, cert, Part::Response).expect("xmlsec1 verifies the error Response");
}

#[tokio::test]
async fn transient_is_new_per_session_and_kept_within_one_for_the_same_sp() {
    let s = setup().await;
    let base = &s.idp.base;
    let (one, two) = (Browser::new(), Browser::new());
    let t = policy(TRANSIENT, true);
    let first = name_id(&response(&one, base, &ask(&s.p, &t), "alice").await);
    assert_eq!(first.format, TRANSIENT);
    assert!(!first.value.contains("alice"), "opaque: {first:?}");
    assert_eq!(first.name_qualifier, None);
    let again = name_id(&response(&one, base, &ask(&s.p, &t), "alice").await);
    assert_eq!(
        again.value, first.value,
        "same session, same SP: same value"
    );
    let other_sp = name_id(&response(&one, base, &ask(&s.q, &t), "alice").await);
    assert_ne!(other_sp.value, first.value, "another SP gets its own");
    let second = name_id(&response(&two, base, &ask(&s.p, &t), "alice").await);
    assert_eq!(second.format, TRANSIENT);
    assert_ne!(second.value, first.value, "a new session, a new value");
}

#[tokio::test]
async fn persistent_is_stable_per_user_and_sp_pairwise_and_never_the_upn() {
    let s = setup().await;
    let base = &s.idp.base;
    let idp_entity = s.idp.state.config.entity_id();
    let p = policy(PERSISTENT, true);
    let first = name_id(&response(&Browser::new(), base, &ask(&s.p, &p), "alice").await);
    assert_eq!(first.format, PERSISTENT);
    assert!(!first.value.contains("alice"), "opaque: {first:?}");
    assert_eq!(first.name_qualifier.as_deref(), Some(idp_entity.as_str()));
    assert_eq!(
        first.sp_name_qualifier.as_deref(),
        Some(s.p.entity_id.as_str())
    );
    let later = Browser::new();
    let again = name_id(&response(&later, base, &ask(&s.p, &p), "ALICE").await);
    assert_eq!(again, first, "a second session of the same user");
    let at_q = name_id(&response(&later, base, &ask(&s.q, &p), "alice").await);
    assert_ne!(
        at_q.value, first.value,
        "pairwise: another SP, another value"
    );
    assert_eq!(
        at_q.sp_name_qualifier.as_deref(),
        Some(s.q.entity_id.as_str())
    );
    let bob = name_id(&response(&Browser::new(), base, &ask(&s.p, &p), "bob").await);
    assert_ne!(bob.value, first.value, "another user, another value");

    // The trust whose default is persistent gets the pairwise value without asking.
    let pd = name_id(&response(&later, base, &ask(&s.pd, ""), "alice").await);
    assert_eq!(pd.format, PERSISTENT);
    assert_ne!(
        pd.value, "alice@corp.example",
        "no UPN under the persistent label"
    );
    assert_eq!(pd.value.len(), 32, "{pd:?}");
    // And with an explicit `unspecified`, the default as configured.
    let unspec = policy(UNSPECIFIED, true);
    let plain = name_id(&response(&later, base, &ask(&s.p, &unspec), "alice").await);
    assert_eq!(
        (plain.format.as_str(), plain.value.as_str()),
        (UNSPECIFIED, "alice@corp.example")
    );
}

#[tokio::test]
async fn allow_create_false_gives_only_an_existing_persistent_id() {
    let s = setup().await;
    let base = &s.idp.base;
    let no_create = policy(PERSISTENT, false);
    let browser = Browser::new();
    let xml = response(&browser, base, &ask(&s.p, &no_create), "carol").await;
    assert_invalid_policy(&xml, &s.cert);
    // The sign-in still made an SSO session: the same browser, allowed to create, gets one.
    let made = name_id(&response(&browser, base, &ask(&s.p, &policy(PERSISTENT, true)), "-").await);
    let kept = name_id(&response(&Browser::new(), base, &ask(&s.p, &no_create), "carol").await);
    assert_eq!(kept.value, made.value, "the existing one is given");
}

#[tokio::test]
async fn formats_the_trust_does_not_allow_or_tessera_does_not_issue_are_refused_signed() {
    let s = setup().await;
    let base = &s.idp.base;
    let browser = Browser::new();
    let xml = response(
        &browser,
        base,
        &ask(&s.narrow, &policy(TRANSIENT, true)),
        "alice",
    )
    .await;
    assert_invalid_policy(&xml, &s.cert);
    let xml = response(&browser, base, &ask(&s.p, &policy(X509, true)), "alice").await;
    assert_invalid_policy(&xml, &s.cert);
    // The sign-in log says why.
    let log = s
        .idp
        .state
        .store
        .read_log("signin", 0, i64::MAX, 50)
        .await
        .expect("sign-in log");
    let refusals: Vec<String> = log
        .iter()
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
        .filter(|e| e.contains("InvalidNameIDPolicy"))
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(
        refusals[0].contains("X509SubjectName") && refusals[1].contains("not allowed"),
        "newest first, each with its reason: {refusals:?}"
    );
    // What the narrow trust allows still works, in the same session.
    let ok = name_id(
        &response(
            &browser,
            base,
            &ask(&s.narrow, &policy(UNSPECIFIED, true)),
            "alice",
        )
        .await,
    );
    assert_eq!(ok.value, "alice@corp.example");
}

#[tokio::test]
async fn an_sp_name_qualifier_must_name_the_requester() {
    let s = setup().await;
    let base = &s.idp.base;
    let browser = Browser::new();
    let foreign = format!(
        r#"<samlp:NameIDPolicy Format="{PERSISTENT}" SPNameQualifier="{}" AllowCreate="true"/>"#,
        s.q.entity_id
    );
    let xml = response(&browser, base, &ask(&s.p, &foreign), "alice").await;
    assert_invalid_policy(&xml, &s.cert);
    let own = foreign.replace(&s.q.entity_id, &s.p.entity_id);
    let ok = name_id(&response(&browser, base, &ask(&s.p, &own), "alice").await);
    assert_eq!(
        ok.sp_name_qualifier.as_deref(),
        Some(s.p.entity_id.as_str())
    );
}

#[tokio::test]
async fn email_address_gives_the_directory_mail() {
    let s = setup().await;
    let xml = response(
        &Browser::new(),
        &s.idp.base,
        &ask(&s.p, &policy(EMAIL, true)),
        "alice",
    )
    .await;
    let n = name_id(&xml);
    assert_eq!(
        (n.format.as_str(), n.value.as_str()),
        (EMAIL, "alice.mail@corp.example"),
        "the mail, not the UPN"
    );
    // A user without mail cannot be named by it: the SP hears so, signed.
    let xml = response(
        &Browser::new(),
        &s.idp.base,
        &ask(&s.p, &policy(EMAIL, true)),
        "carol",
    )
    .await;
    assert_invalid_policy(&xml, &s.cert);
}

#[tokio::test]
async fn hostile_name_id_policies_get_a_page_and_never_a_token() {
    let s = setup().await;
    let huge = format!(
        r#"<samlp:NameIDPolicy Format="urn:{}" AllowCreate="true"/>"#,
        "x".repeat(5000)
    );
    let twice = format!("{}{}", policy(TRANSIENT, true), policy(PERSISTENT, true));
    let garbage = format!(r#"<samlp:NameIDPolicy Format="{TRANSIENT}" AllowCreate="yes please"/>"#);
    for hostile in [huge, twice, garbage] {
        let (status, page) =
            send(&Browser::new(), &s.idp.base, &ask(&s.p, &hostile), "alice").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        assert!(!page.contains("SAMLResponse"), "{page}");
        assert!(
            !page.contains("name=\"password\""),
            "refused before sign-in: {page}"
        );
    }
}

fn node_env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TESSERA__MFA__ENABLED", "false".to_owned()),
        (
            "TESSERA__IDP__ENTITY_ID",
            "https://idp.corp.example/adfs/services/trust".to_owned(),
        ),
    ];
    env.extend_from_slice(extra);
    env
}

async fn persistent_at(node: &Node, sp: &TestSp) -> Issued {
    let q = ask(sp, &policy(PERSISTENT, true));
    name_id(&response(&Browser::new(), &node.base, &q, "alice").await)
}

/// `tessera rp ARGS` in a node directory (no server running there); its standard output.
fn rp_cli(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .arg("rp")
        .args(args)
        .output()
        .expect("tessera rp");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn persistent_ids_survive_a_restart_on_the_embedded_store() {
    let sp = TestSp::new("restart");
    let dir = tempfile::tempdir().expect("dir");
    provision_node(
        dir.path(),
        &sp.metadata(false),
        vec![file_user("alice", PW)],
    );
    std::fs::write(
        dir.path().join("metadata/sp.toml"),
        "name_id_formats = [\"persistent\"]\n",
    )
    .expect("sidecar");
    let env = node_env(&[]);
    let node = Node::start(dir.path(), &env).await;
    let before = persistent_at(&node, &sp).await;
    drop(node);
    // While it is down, the admin's `rp list` shows what the trust lets requests ask for,
    // and moving the file trust into the store keeps that list.
    let listed = rp_cli(dir.path(), &["list"]);
    assert!(
        listed.contains("name_id_formats=unspecified,persistent\t"),
        "{listed}"
    );
    rp_cli(
        dir.path(),
        &["add", "--metadata", "metadata/sp.xml", "--replace"],
    );
    let listed = rp_cli(dir.path(), &["list"]);
    assert!(
        listed.contains("name_id_formats=unspecified,persistent\t") && listed.contains("console:"),
        "{listed}"
    );
    let node = Node::start(dir.path(), &env).await;
    let after = persistent_at(&node, &sp).await;
    assert_eq!(after, before, "the same identifier after a restart");
}

#[tokio::test]
async fn persistent_ids_are_the_same_on_every_node_of_a_redis_farm() {
    let redis = RedisServer::start();
    let sp = TestSp::new("farm");
    let (da, db) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    provision_node(da.path(), &sp.metadata(false), vec![file_user("alice", PW)]);
    provision_node(db.path(), &sp.metadata(false), vec![file_user("alice", PW)]);
    let env = node_env(&[
        ("TESSERA__STORE__BACKEND", "redis".to_owned()),
        ("TESSERA__STORE__REDIS_URL", redis.url()),
    ]);
    let (a, b) = (
        Node::start(da.path(), &env).await,
        Node::start(db.path(), &env).await,
    );
    let on_b = persistent_at(&b, &sp).await;
    let on_a = persistent_at(&a, &sp).await;
    assert_eq!(on_a, on_b, "one identifier for the farm");
}

/// Seed passwords are "<uid>-Pass-1" (deploy/ldap/seed.ldif).
const ALICE_LDAP: &str = "alice-Pass-1";

/// Through mellon: its protected page, Tessera's login, back to mellon. The page text.
async fn mellon_sign_in(browser: &Browser, mellon: &MellonSp, idp: &Tessera) -> String {
    let (url, status, page) = browser.get(&mellon.protected_url()).await;
    assert_eq!(status, StatusCode::OK, "{page}\n{}", mellon.error_log());
    assert!(
        url.starts_with(&idp.base) && page.contains("name=\"password\""),
        "{url}"
    );
    let (_, status, page) = browser.sign_in(&url, &page, "alice", ALICE_LDAP).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let action = join(&url, &form_action(&page).expect("auto-POST form"));
    let response = input_value(&page, "SAMLResponse").expect("SAMLResponse");
    let rs = input_value(&page, "RelayState").unwrap_or_default();
    let (_, status, body) = browser
        .post(&action, &[("SAMLResponse", &response), ("RelayState", &rs)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", mellon.error_log());
    body
}

fn env_line<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing in {body}"))
}

#[tokio::test]
async fn mellon_asking_for_transient_gets_a_new_opaque_name_per_session() {
    let slapd = Slapd::start();
    let mut b = TesseraBuilder::new();
    b.config.directory.kind = DirectoryKind::Ldap;
    b.config.directory.ldap = Some(slapd.settings());
    b.config.mfa.enabled = false;
    let mellon = MellonSp::start(MellonOptions {
        name_id_format: Some(TRANSIENT),
        ..MellonOptions::new(b.idp_metadata())
    });
    // The trust's own default stays unspecified (UPN): the transient comes from the request.
    b.add_rp("mellon", &mellon.sp_metadata(), "name = \"Mellon\"\n");
    let idp = b.start().await;
    let first = mellon_sign_in(&Browser::new(), &mellon, &idp).await;
    let second = mellon_sign_in(&Browser::new(), &mellon, &idp).await;
    let (one, two) = (
        env_line(&first, "MELLON_NAME_ID"),
        env_line(&second, "MELLON_NAME_ID"),
    );
    assert_eq!(
        env_line(&first, "REMOTE_USER"),
        one,
        "mellon names the user by it"
    );
    // The trust's default would have been the UPN: this is the transient the request asked for.
    assert!(!one.is_empty() && !one.contains("alice"), "opaque: {first}");
    assert_ne!(one, two, "a new transient NameID per session");
    assert!(
        env_line(
            &first,
            "MELLON_http___schemas_xmlsoap_org_ws_2005_05_identity_claims_emailaddress"
        )
        .contains("alice@corp.example"),
        "attributes still released: {first}"
    );
    drop(slapd);
}
