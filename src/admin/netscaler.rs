//! Ready-to-paste NetScaler CLI for a relying party: trust our token-signing certificate and create the matching `authentication samlAction`.
//!
//! Parameters follow the samlAction reference (see shared/reference/netscaler-sp.md). Every
//! value pasted into the command comes from metadata an SP supplied, so anything outside a
//! conservative character set refuses the whole command: an admin must never paste a CLI line
//! that hostile metadata shaped.

use crate::rp::{RelyingParty, SignChoice};

/// The certKey name the commands create for our certificate.
pub const CERT_KEY_NAME: &str = "tessera-token-signing";
/// The file the admin copies to /nsconfig/ssl/ (our certificate, PEM).
pub const CERT_FILE: &str = "tessera-token-signing.cer";

fn safe(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 512
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/._~%?&=#@+-".contains(c))
}

/// The samlAction's name: `tessera_` and the RP's name, reduced to what the CLI accepts.
pub fn action_name(rp: &RelyingParty) -> String {
    let base: String = rp
        .name
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

/// The commands, or why none can be given for this RP.
pub fn commands(rp: &RelyingParty, sso_url: &str, slo_url: Option<&str>) -> Result<String, String> {
    let acs = rp
        .acs
        .first()
        .ok_or("this relying party has no assertion consumer service")?;
    let host = url::Url::parse(&acs.url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or("the ACS URL has no host")?;
    for (what, v) in [
        ("entity ID", rp.entity_id.as_str()),
        ("ACS URL", acs.url.as_str()),
        ("host", host.as_str()),
        ("sign-in URL", sso_url),
    ] {
        if !safe(v) {
            return Err(format!(
                "the {what} contains characters that are not safe on the NetScaler command line; configure the samlAction by hand"
            ));
        }
    }
    let reject_unsigned = match rp.sign {
        SignChoice::Both => "STRICT",
        SignChoice::Assertion => "ON",
        // NetScaler's ON needs a signed Assertion; a Response-only RP must run with OFF.
        SignChoice::Response => "OFF",
    };
    let mut out = vec![
        format!("# Copy {CERT_FILE} (from Tessera's admin console) to /nsconfig/ssl/ first."),
        format!("add ssl certKey {CERT_KEY_NAME} -cert {CERT_FILE}"),
    ];
    let mut action = format!(
        "add authentication samlAction {name} -samlIdPCertName {CERT_KEY_NAME} -samlRedirectUrl \"{sso_url}\" -samlIssuerName \"{issuer}\" -samlRejectUnsignedAssertion {reject_unsigned} -samlBinding POST -signatureAlg RSA-SHA256 -digestMethod SHA256 -skewTime 5",
        name = action_name(rp),
        issuer = rp.entity_id,
    );
    if rp.require_signed_requests || !rp.certs.is_empty() {
        action.push_str(" -samlSigningCertName <the gateway's SAML signing certKey>");
    }
    if let Some(slo) = slo_url.filter(|s| safe(s)) {
        action.push_str(&format!(" -logoutURL \"{slo}\" -logoutBinding POST"));
    }
    action.push_str(&format!(
        " -relaystateRule 'AAA.LOGIN.RELAYSTATE.CONTAINS(\"https://{host}/\")'"
    ));
    out.push(action);
    if rp.sign == SignChoice::Response {
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
