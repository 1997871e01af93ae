//! Ready-to-paste NetScaler CLI for a relying party: trust our token-signing certificate and create the matching `authentication samlAction`.
//!
//! The one generator of these commands: the console shows them for each NetScaler trust,
//! `/docs` for `Gateway::example()` with this server's own URLs, and the README's example is
//! this function's output (a test compares them), so the three cannot drift apart.
//!
//! Parameters follow the samlAction reference (see shared/reference/netscaler-sp.md). Every
//! value pasted into the command comes from metadata an SP supplied, so anything outside a
//! conservative character set refuses the whole command: an admin must never paste a CLI line
//! that hostile metadata shaped.
//!
//! No `-requestedAuthnContext`: the NetScaler's default is `exact`, and a lenient trust (what
//! the NetScaler preset sets) answers an `exact` request with the requested class when what
//! was done meets it (`login::authn_context::choose`). A strict trust would refuse such a
//! request after a second factor (we then state `multipleauthn`), so its command asks for
//! `minimum` comparison instead, which a stronger sign-in satisfies (SAML core §3.3.2.2.1).

use crate::rp::{AuthnContextMode, RelyingParty, SignChoice};

/// The certKey name the commands create for our certificate.
pub const CERT_KEY_NAME: &str = "tessera-token-signing";
/// The file the admin copies to /nsconfig/ssl/ (our certificate, PEM).
pub const CERT_FILE: &str = "tessera-token-signing.cer";

/// What the commands need to know about the gateway (the SP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The trust's name; the samlAction is named after it (`action_name`).
    pub name: String,
    /// The gateway's entity ID: its `samlIssuerName`.
    pub entity_id: String,
    /// Its assertion consumer service (`https://<gateway>/cgi/samlauth`).
    pub acs: String,
    pub sign: SignChoice,
    /// The gateway signs its requests (`samlSigningCertName`): its metadata has a certificate.
    pub signs_requests: bool,
    pub authn_context: AuthnContextMode,
}

impl Gateway {
    /// The gateway a relying-party trust describes.
    pub fn of(rp: &RelyingParty) -> Result<Self, String> {
        let acs = rp
            .acs
            .first()
            .ok_or("this relying party has no assertion consumer service")?;
        Ok(Gateway {
            name: rp.name.clone(),
            entity_id: rp.entity_id.clone(),
            acs: acs.url.clone(),
            sign: rp.sign,
            signs_requests: rp.require_signed_requests || !rp.certs.is_empty(),
            authn_context: rp.authn_context,
        })
    }

    /// The example gateway of the guide and the README: `gateway.corp.example` registered
    /// with the NetScaler preset (both signed, lenient AuthnContext), unsigned requests.
    pub fn example() -> Self {
        Gateway {
            name: "NetScaler Gateway".into(),
            entity_id: "https://gateway.corp.example".into(),
            acs: "https://gateway.corp.example/cgi/samlauth".into(),
            sign: SignChoice::Both,
            signs_requests: false,
            authn_context: AuthnContextMode::Lenient,
        }
    }
}

fn safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._~%?&=#@+-".contains(c))
}

/// The samlAction's name: `tessera_` and the RP's name, reduced to what the CLI accepts.
pub fn action_name(rp: &RelyingParty) -> String {
    name_for(&rp.name)
}

fn name_for(rp_name: &str) -> String {
    let base: String = rp_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = base.trim_matches('_');
    format!(
        "tessera_{}",
        if trimmed.is_empty() {
            "gateway"
        } else {
            trimmed
        }
    )
}

/// The commands for a relying-party trust, or why none can be given for it.
pub fn commands(rp: &RelyingParty, sso_url: &str, slo_url: Option<&str>) -> Result<String, String> {
    script(&Gateway::of(rp)?, sso_url, slo_url)
}

/// The commands for `gw`, pointing it at our `sso_url` (and `slo_url`), or why none can be
/// given.
pub fn script(gw: &Gateway, sso_url: &str, slo_url: Option<&str>) -> Result<String, String> {
    let host = url::Url::parse(&gw.acs)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or("the ACS URL has no host")?;
    for (what, v) in [
        ("entity ID", gw.entity_id.as_str()),
        ("ACS URL", gw.acs.as_str()),
        ("host", host.as_str()),
        ("sign-in URL", sso_url),
    ] {
        if !safe(v) {
            return Err(format!(
                "the {what} contains characters that are not safe on the NetScaler command line; configure the samlAction by hand"
            ));
        }
    }
    let reject_unsigned = match gw.sign {
        SignChoice::Both => "STRICT",
        SignChoice::Assertion => "ON",
        // NetScaler's ON needs a signed Assertion; a Response-only RP must run with OFF.
        SignChoice::Response => "OFF",
    };
    let name = name_for(&gw.name);
    let mut out = vec![
        format!(
            "# Copy {CERT_FILE} (console: Relying parties; or `tessera metadata --cert`) to /nsconfig/ssl/ first."
        ),
        format!("add ssl certKey {CERT_KEY_NAME} -cert {CERT_FILE}"),
    ];
    let mut action = format!(
        "add authentication samlAction {name} -samlIdPCertName {CERT_KEY_NAME} -samlRedirectUrl \"{sso_url}\" -samlIssuerName \"{issuer}\" -samlRejectUnsignedAssertion {reject_unsigned} -samlBinding POST -signatureAlg RSA-SHA256 -digestMethod SHA256 -skewTime 5",
        issuer = gw.entity_id,
    );
    if gw.signs_requests {
        action.push_str(" -samlSigningCertName <the gateway's SAML signing certKey>");
    }
    if gw.authn_context == AuthnContextMode::Strict {
        action.push_str(" -requestedAuthnContext minimum");
    }
    if let Some(slo) = slo_url.filter(|s| safe(s)) {
        action.push_str(&format!(" -logoutURL \"{slo}\" -logoutBinding POST"));
    }
    action.push_str(&format!(
        " -relaystateRule 'AAA.LOGIN.RELAYSTATE.CONTAINS(\"https://{host}/\")'"
    ));
    out.push(action);
    out.push(format!(
        "add authentication Policy {name}_pol -rule true -action {name}"
    ));
    out.push(format!(
        "bind authentication vserver <your AAA vserver> -policy {name}_pol -priority 100"
    ));
    if gw.sign == SignChoice::Response {
        out.push("# This relying party gets only the Response signed: consider sign = \"both\" (STRICT).".into());
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rp::{Acs, AuthnContextMode, ClaimSource};

    fn rp(entity: &str, acs: &str, sign: SignChoice) -> RelyingParty {
        RelyingParty {
            name: "NetScaler Gateway".into(),
            display_name: "NetScaler Gateway".into(),
            entity_id: entity.into(),
            acs: vec![Acs {
                url: acs.into(),
                index: None,
            }],
            slo: None,
            slo_binding: crate::saml::request::Binding::Post,
            certs: Vec::new(),
            sign,
            name_id_source: ClaimSource::Upn,
            name_id_format: String::new(),
            name_id_formats: Vec::new(),
            require_signed_requests: false,
            authn_context: AuthnContextMode::Lenient,
            attributes: Vec::new(),
            preset: None,
            protocol: crate::rp::Protocol::Saml,
            token: crate::rp::TokenType::Saml11,
            enabled: true,
            mfa_required: true,
            origin: "test".into(),
        }
    }

    #[test]
    fn strict_gateway_command() {
        let r = rp(
            "https://gw.corp.example",
            "https://gw.corp.example/cgi/samlauth",
            SignChoice::Both,
        );
        let c = commands(
            &r,
            "https://idp.corp.example/adfs/ls/",
            Some("https://idp.corp.example/adfs/ls/"),
        )
        .unwrap();
        assert!(
            c.contains("add ssl certKey tessera-token-signing -cert tessera-token-signing.cer"),
            "{c}"
        );
        assert!(
            c.contains("add authentication samlAction tessera_netscaler_gateway "),
            "{c}"
        );
        assert!(c.contains("-samlRejectUnsignedAssertion STRICT"), "{c}");
        assert!(
            c.contains("-samlIssuerName \"https://gw.corp.example\""),
            "{c}"
        );
        assert!(
            c.contains("'AAA.LOGIN.RELAYSTATE.CONTAINS(\"https://gw.corp.example/\")'"),
            "{c}"
        );
        assert!(!c.contains("samlSigningCertName"), "{c}");
    }

    /// The README's example values (its "Registering a NetScaler Gateway" section).
    const README_SSO: &str = "https://idp.corp.example/adfs/ls/";

    fn readme_block() -> String {
        let cmds = script(&Gateway::example(), README_SSO, Some(README_SSO)).unwrap();
        format!("```\n{cmds}\n```")
    }

    #[test]
    fn the_readme_shows_exactly_the_generated_commands() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let block = readme_block();
        assert!(
            readme.contains(&block),
            "README.md must show the generated NetScaler commands; replace its block with:\n{block}"
        );
        let actions = readme
            .lines()
            .filter(|l| l.trim_start().starts_with("add authentication samlAction "))
            .count();
        assert_eq!(
            actions, 1,
            "one samlAction command in the README, the generated one"
        );
    }

    #[test]
    fn the_example_is_the_preset_and_asks_no_exact_authn_context() {
        let c = script(&Gateway::example(), README_SSO, Some(README_SSO)).unwrap();
        assert!(!c.contains("requestedAuthnContext"), "{c}");
        assert!(c.contains("-samlRejectUnsignedAssertion STRICT"), "{c}");
        assert!(
            c.contains("add authentication Policy tessera_netscaler_gateway_pol -rule true -action tessera_netscaler_gateway"),
            "{c}"
        );
        assert!(
            c.contains("-samlIssuerName \"https://gateway.corp.example\""),
            "{c}"
        );
    }

    /// What the command leaves the NetScaler to send is what our AuthnContext handling
    /// accepts after a second factor: `exact` (its default) on a lenient trust, `minimum` on
    /// a strict one.
    #[test]
    fn the_authn_context_the_command_implies_is_answered() {
        use crate::login::AuthMethod;
        use crate::login::authn_context::choose;
        use crate::saml::request::{Comparison, RequestedContext};
        let mfa = [AuthMethod::Password, AuthMethod::Push];
        let ppt = |comparison| RequestedContext {
            comparison,
            classes: vec![crate::saml::AC_PASSWORD_PROTECTED.to_owned()],
        };
        let mut gw = Gateway::example();
        assert!(
            !script(&gw, README_SSO, None)
                .unwrap()
                .contains("requestedAuthnContext")
        );
        assert!(choose(Some(&ppt(Comparison::Exact)), gw.authn_context, &mfa).is_some());
        gw.authn_context = AuthnContextMode::Strict;
        let c = script(&gw, README_SSO, None).unwrap();
        assert!(c.contains(" -requestedAuthnContext minimum "), "{c}");
        assert!(choose(Some(&ppt(Comparison::Minimum)), gw.authn_context, &mfa).is_some());
        assert!(choose(Some(&ppt(Comparison::Exact)), gw.authn_context, &mfa).is_none());
    }

    #[test]
    fn hostile_values_give_no_command() {
        for entity in ["gw\" -samlIssuerName evil", "gw;rm -rf", "gw'x", "gw\nadd"] {
            let r = rp(
                entity,
                "https://gw.corp.example/cgi/samlauth",
                SignChoice::Both,
            );
            assert!(
                commands(&r, "https://idp/adfs/ls/", None).is_err(),
                "{entity:?}"
            );
        }
        let r = rp(
            "https://gw",
            "https://gw.corp.example/cgi/samlauth",
            SignChoice::Response,
        );
        let c = commands(&r, "https://idp/adfs/ls/", None).unwrap();
        assert!(c.contains("-samlRejectUnsignedAssertion OFF"), "{c}");
    }
}
