//! SAML metadata: our signed IdP metadata out, SP metadata in (parsed defensively).

use base64::Engine;
use openssl::x509::X509;

use crate::xml::{self, Element, Limits};
use crate::xmldsig::emit::El;
use crate::xmldsig::sign::{SigningKey, sign_enveloped};

use super::request::Binding;
use super::vocab::{
    Acs, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED, check_endpoint_url,
};
use super::{BINDING_POST, BINDING_REDIRECT, NS_DS, NS_MD, NS_SAMLP};

/// WS-Federation metadata (WS-Federation 1.2 §3.1, MS-WSFED §2.2.6): the namespace of the
/// `fed:` role types and endpoints, and what they are written with. The passive profile
/// itself is `wsfed/`; its metadata travels inside SAML metadata, so it is read and written
/// here.
pub const NS_FED: &str = "http://docs.oasis-open.org/wsfed/federation/200706";
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
pub const NS_WSA: &str = "http://www.w3.org/2005/08/addressing";
/// The token types our security token service offers (SAML 1.1 and 2.0 assertions).
const TOKEN_TYPES: [&str; 2] = [
    "urn:oasis:names:tc:SAML:1.0:assertion",
    "urn:oasis:names:tc:SAML:2.0:assertion",
];
/// Reply URLs taken from one application role at most.
const MAX_PASSIVE_ENDPOINTS: usize = 16;

/// The endpoints we publish, derived from the public URL.
#[derive(Debug, Clone)]
pub struct IdpEndpoints {
    pub entity_id: String,
    pub sso: String,
    pub slo: Option<String>,
}

/// A token-signing key as metadata publishes it. `keys::KeyMaterial` implements it; the
/// trait keeps this module from depending on the key store (which itself publishes metadata).
pub trait PublishedKey {
    fn signer(&self) -> &SigningKey;
    /// Base64 DER of the certificate, the ds:X509Certificate text.
    fn cert_b64(&self) -> &str;
}

/// Builds and signs our IdP metadata (SAML metadata §2.4.3). Signing uses the token-signing
/// key so an SP that imports the file can check it came from us.
pub fn idp_metadata<K: PublishedKey>(
    ep: &IdpEndpoints,
    keys: &K,
    next: Option<&K>,
) -> Result<String, crate::xmldsig::sign::SignError> {
    let key_descriptor = |k: &K| {
        El::new("md", "KeyDescriptor", NS_MD)
            .attr("use", "signing")
            .child(
                El::new("ds", "KeyInfo", NS_DS).child(
                    El::new("ds", "X509Data", NS_DS)
                        .child(El::new("ds", "X509Certificate", NS_DS).text(k.cert_b64())),
                ),
            )
    };
    let mut idp = El::new("md", "IDPSSODescriptor", NS_MD)
        .attr("WantAuthnRequestsSigned", "false")
        .attr("protocolSupportEnumeration", NS_SAMLP)
        .child(key_descriptor(keys));
    if let Some(n) = next {
        // Published ahead of a rollover so pinned SPs can be updated before the switch.
        idp.push(key_descriptor(n));
    }
    if let Some(slo) = &ep.slo {
        for binding in [BINDING_REDIRECT, BINDING_POST] {
            idp.push(
                El::new("md", "SingleLogoutService", NS_MD)
                    .attr("Binding", binding)
                    .attr("Location", slo.clone()),
            );
        }
    }
    for f in [
        NAMEID_UNSPECIFIED,
        NAMEID_EMAIL,
        NAMEID_PERSISTENT,
        NAMEID_TRANSIENT,
    ] {
        idp.push(El::new("md", "NameIDFormat", NS_MD).text(f));
    }
    for binding in [BINDING_REDIRECT, BINDING_POST] {
        idp.push(
            El::new("md", "SingleSignOnService", NS_MD)
                .attr("Binding", binding)
                .attr("Location", ep.sso.clone()),
        );
    }
    let mut sts = sts_role().child(key_descriptor(keys));
    if let Some(n) = next {
        sts.push(key_descriptor(n));
    }
    let mut root = El::new("md", "EntityDescriptor", NS_MD)
        .attr("ID", super::new_id())
        .attr("entityID", ep.entity_id.clone())
        // SAML metadata §2.3.2: RoleDescriptor elements come before IDPSSODescriptor.
        .child(sts_endpoints(sts, &ep.sso))
        .child(idp);
    // Metadata schema: ds:Signature is the first child of EntityDescriptor.
    sign_enveloped(&mut root, keys.signer(), 0)?;
    // `document`, not `c14n`: the role's `xsi:type="fed:…"` needs `fed` bound where a
    // reader resolves it; exclusive c14n leaves that declaration out of the signed bytes.
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        crate::xmldsig::emit::document(&root)
    ))
}

/// Our WS-Federation security token service role (WS-Federation 1.2 §3.1.2.2), keys to be
/// added: AD FS publishes the same, so WS-Fed relying parties configure themselves from it.
fn sts_role() -> El {
    El::new("md", "RoleDescriptor", NS_MD)
        .declare("fed", NS_FED)
        .attr_ns("xsi", "type", NS_XSI, "fed:SecurityTokenServiceType")
        .attr("protocolSupportEnumeration", NS_FED)
}

/// The STS role's content after its keys, in schema order: the token types offered, the
/// token service endpoint (the schema requires one; we have only the passive one, AD FS's
/// `/adfs/ls/`) and the passive requestor endpoint.
fn sts_endpoints(role: El, passive: &str) -> El {
    let address = || {
        El::new("wsa", "EndpointReference", NS_WSA)
            .child(El::new("wsa", "Address", NS_WSA).text(passive))
    };
    role.child(
        El::new("fed", "TokenTypesOffered", NS_FED).children(
            TOKEN_TYPES
                .iter()
                .map(|t| El::new("fed", "TokenType", NS_FED).attr("Uri", *t)),
        ),
    )
    .child(El::new("fed", "SecurityTokenServiceEndpoint", NS_FED).child(address()))
    .child(El::new("fed", "PassiveRequestorEndpoint", NS_FED).child(address()))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("metadata is not well-formed or safe XML: {0}")]
    Xml(String),
    #[error("metadata: {0}")]
    Invalid(String),
}

/// Which role of the metadata the trust is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpProtocol {
    /// An SPSSODescriptor (SAML 2.0 Web SSO).
    Saml,
    /// A `fed:ApplicationServiceType` RoleDescriptor (WS-Federation passive requestor):
    /// the entity ID is the realm, `acs` the reply URLs.
    Wsfed,
}

/// What we take from an SP's metadata.
#[derive(Debug, Clone)]
pub struct SpMetadata {
    pub protocol: SpProtocol,
    pub entity_id: String,
    /// HTTP-POST AssertionConsumerService endpoints, default first.
    pub acs: Vec<Acs>,
    pub slo: Option<String>,
    /// The binding `slo` is reached by.
    pub slo_binding: Binding,
    pub certs: Vec<X509>,
    pub authn_requests_signed: bool,
    pub want_assertions_signed: bool,
}

/// Parses SP metadata (an EntityDescriptor, or an EntitiesDescriptor holding exactly one SP).
/// Everything is checked: endpoints must be http(s), certificates must parse.
pub fn parse_sp_metadata(text: &str) -> Result<SpMetadata, MetadataError> {
    let limits = Limits {
        max_bytes: 1024 * 1024,
        ..Limits::default()
    };
    let root = xml::parse(text, &limits).map_err(|e| MetadataError::Xml(e.to_string()))?;
    let entity = if root.is(NS_MD, "EntityDescriptor") {
        &root
    } else if root.is(NS_MD, "EntitiesDescriptor") {
        let sps: Vec<&Element> = root
            .children_named(NS_MD, "EntityDescriptor")
            .filter(|e| {
                e.child(NS_MD, "SPSSODescriptor").is_some() || !app_roles(&root, e).is_empty()
            })
            .collect();
        match sps.as_slice() {
            [one] => *one,
            [] => return Err(MetadataError::Invalid("no SP entity found".into())),
            many => {
                return Err(MetadataError::Invalid(format!(
                    "{} SP entities found; import one at a time",
                    many.len()
                )));
            }
        }
    } else {
        return Err(MetadataError::Invalid(
            "the root element is not an md:EntityDescriptor".into(),
        ));
    };
    let entity_id = entity
        .attr("entityID")
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 1024)
        .ok_or_else(|| MetadataError::Invalid("entityID is missing or too long".into()))?
        .to_owned();
    let Some(sp) = entity.child(NS_MD, "SPSSODescriptor") else {
        return wsfed_application(&root, entity, entity_id);
    };
    let flag = |name| sp.attr(name).map(str::trim) == Some("true") || sp.attr(name) == Some("1");

    let mut acs = Vec::new();
    let mut default_pos = None;
    for a in sp.children_named(NS_MD, "AssertionConsumerService") {
        if a.attr("Binding") != Some(BINDING_POST) {
            continue; // we answer with the POST binding only (artifact is not supported)
        }
        let url = a.attr("Location").ok_or_else(|| {
            MetadataError::Invalid("AssertionConsumerService without Location".into())
        })?;
        check_endpoint_url(url).map_err(MetadataError::Invalid)?;
        let index = a.attr("index").and_then(|i| i.trim().parse::<u16>().ok());
        if a.attr("isDefault") == Some("true") && default_pos.is_none() {
            default_pos = Some(acs.len());
        }
        acs.push(Acs {
            url: url.to_owned(),
            index,
        });
    }
    if acs.is_empty() {
        return Err(MetadataError::Invalid(
            "no AssertionConsumerService with the HTTP-POST binding".into(),
        ));
    }
    if let Some(p) = default_pos {
        let d = acs.remove(p);
        acs.insert(0, d);
    } else {
        // SAML metadata §2.2.3: without isDefault, the lowest index is the default.
        acs.sort_by_key(|a| a.index.unwrap_or(u16::MAX));
    }
    // Single logout goes out over HTTP-POST when the SP offers it (no URL length limit),
    // else over HTTP-Redirect with a signed query (mod_auth_mellon offers only that).
    let slo_service = |binding: &str| {
        sp.children_named(NS_MD, "SingleLogoutService")
            .find(|s| s.attr("Binding") == Some(binding))
    };
    let (slo_el, slo_binding) = match slo_service(BINDING_POST) {
        Some(el) => (Some(el), Binding::Post),
        None => (slo_service(BINDING_REDIRECT), Binding::Redirect),
    };
    let slo = slo_el
        .and_then(|s| s.attr("Location"))
        .map(|u| check_endpoint_url(u).map(|_| u.to_owned()))
        .transpose()
        .map_err(MetadataError::Invalid)?;

    Ok(SpMetadata {
        protocol: SpProtocol::Saml,
        entity_id,
        acs,
        slo,
        slo_binding,
        certs: signing_certs(sp)?,
        authn_requests_signed: flag("AuthnRequestsSigned"),
        want_assertions_signed: flag("WantAssertionsSigned"),
    })
}

/// The signing certificates of a role's KeyDescriptors (those without `use` count too).
fn signing_certs(role: &Element) -> Result<Vec<X509>, MetadataError> {
    let mut certs = Vec::new();
    for kd in role.children_named(NS_MD, "KeyDescriptor") {
        if kd.attr("use").is_some_and(|u| u != "signing") {
            continue;
        }
        let Some(text) = kd
            .child(NS_DS, "KeyInfo")
            .and_then(|k| k.child(NS_DS, "X509Data"))
            .and_then(|d| d.child(NS_DS, "X509Certificate"))
            .map(|c| c.text())
        else {
            continue;
        };
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| MetadataError::Invalid("X509Certificate is not base64".into()))?;
        certs.push(
            X509::from_der(&der).map_err(|_| {
                MetadataError::Invalid("X509Certificate is not a certificate".into())
            })?,
        );
    }
    Ok(certs)
}

/// The `md:RoleDescriptor`s of `entity` whose `xsi:type` is `fed:ApplicationServiceType`
/// (WS-Federation 1.2 §3.1.2.4). The type is a QName: its prefix is resolved through the
/// declarations on the role, the entity and the document root.
fn app_roles<'a>(root: &'a Element, entity: &'a Element) -> Vec<&'a Element> {
    entity
        .children_named(NS_MD, "RoleDescriptor")
        .filter(|role| {
            let Some(qname) = role.attr_ns(NS_XSI, "type").map(str::trim) else {
                return false;
            };
            let (prefix, local) = qname.split_once(':').unwrap_or(("", qname));
            local == "ApplicationServiceType"
                && [*role, entity, root].iter().find_map(|e| {
                    e.ns_decls
                        .iter()
                        .rev()
                        .find(|(p, _)| p.as_deref().unwrap_or("") == prefix)
                        .map(|(_, uri)| uri.as_str())
                }) == Some(NS_FED)
        })
        .collect()
}

/// A WS-Federation relying party from its application role: the reply URLs are the
/// `fed:PassiveRequestorEndpoint` addresses (WS-Federation 1.2 §3.1.2.4), the first the
/// default; each must be an http(s) URL like any ACS.
fn wsfed_application(
    root: &Element,
    entity: &Element,
    entity_id: String,
) -> Result<SpMetadata, MetadataError> {
    let role = match app_roles(root, entity).as_slice() {
        [one] => *one,
        [] => {
            return Err(MetadataError::Invalid(
                "no SPSSODescriptor and no WS-Federation application role (fed:ApplicationServiceType)".into(),
            ));
        }
        many => {
            return Err(MetadataError::Invalid(format!(
                "{} WS-Federation application roles; a trust is made from one",
                many.len()
            )));
        }
    };
    let mut acs = Vec::new();
    for ep in role.children_named(NS_FED, "PassiveRequestorEndpoint") {
        let url = ep
            .child(NS_WSA, "EndpointReference")
            .and_then(|r| r.child(NS_WSA, "Address"))
            .map(|a| a.text().trim().to_owned())
            .ok_or_else(|| {
                MetadataError::Invalid(
                    "PassiveRequestorEndpoint without wsa:EndpointReference/wsa:Address".into(),
                )
            })?;
        check_endpoint_url(&url).map_err(MetadataError::Invalid)?;
        if acs.len() == MAX_PASSIVE_ENDPOINTS {
            return Err(MetadataError::Invalid(format!(
                "more than {MAX_PASSIVE_ENDPOINTS} PassiveRequestorEndpoints"
            )));
        }
        if !acs.iter().any(|a: &Acs| a.url == url) {
            let index = u16::try_from(acs.len()).ok();
            acs.push(Acs { url, index });
        }
    }
    if acs.is_empty() {
        return Err(MetadataError::Invalid(
            "the WS-Federation application role has no PassiveRequestorEndpoint".into(),
        ));
    }
    Ok(SpMetadata {
        protocol: SpProtocol::Wsfed,
        entity_id,
        acs,
        slo: None,
        slo_binding: Binding::Post,
        certs: signing_certs(role)?,
        authn_requests_signed: false,
        want_assertions_signed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SP: &str = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://gw.corp.example">
  <md:SPSSODescriptor AuthnRequestsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" Location="https://gw.corp.example/art" index="0"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://gw.corp.example/cgi/samlauth" index="2"/>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://gw.corp.example/cgi/other" index="1"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>"#;

    #[test]
    fn parses_post_acs_lowest_index_first() {
        let md = parse_sp_metadata(SP).expect("parse");
        assert_eq!(md.entity_id, "https://gw.corp.example");
        assert!(md.authn_requests_signed);
        assert_eq!(md.acs.len(), 2);
        assert_eq!(md.acs[0].url, "https://gw.corp.example/cgi/other");
    }

    /// A WS-Fed application's federation metadata, its `fed` prefix bound on the root.
    const WSFED: &str = r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:fed="http://docs.oasis-open.org/wsfed/federation/200706" entityID="urn:sharepoint:portal">
  <RoleDescriptor xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="fed:ApplicationServiceType" protocolSupportEnumeration="http://docs.oasis-open.org/wsfed/federation/200706">
    <fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address> https://portal.corp.example/_trust/ </wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint>
    <fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa="http://www.w3.org/2005/08/addressing"><wsa:Address>https://portal2.corp.example/_trust/</wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint>
  </RoleDescriptor>
</EntityDescriptor>"#;

    #[test]
    fn a_wsfed_application_role_makes_a_wsfed_trust() {
        let md = parse_sp_metadata(WSFED).expect("parse");
        assert_eq!(md.protocol, SpProtocol::Wsfed);
        assert_eq!(md.entity_id, "urn:sharepoint:portal");
        let urls: Vec<&str> = md.acs.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://portal.corp.example/_trust/",
                "https://portal2.corp.example/_trust/"
            ]
        );
        assert_eq!(
            parse_sp_metadata(SP).expect("saml").protocol,
            SpProtocol::Saml
        );
        // Inside an EntitiesDescriptor too.
        let wrapped = format!(
            "<md:EntitiesDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\">{WSFED}</md:EntitiesDescriptor>"
        );
        assert_eq!(
            parse_sp_metadata(&wrapped).expect("wrapped").protocol,
            SpProtocol::Wsfed
        );
    }

    #[test]
    fn hostile_wsfed_metadata_is_refused() {
        let role_start = WSFED.find("<RoleDescriptor").unwrap();
        let role_end = WSFED.find("</RoleDescriptor>").unwrap() + "</RoleDescriptor>".len();
        let role = &WSFED[role_start..role_end];
        let cases = [
            // A script address would end up as the auto-POST form's action.
            WSFED.replace(
                "https://portal2.corp.example/_trust/",
                "javascript:alert(1)",
            ),
            WSFED.replace(" https://portal.corp.example/_trust/ ", "data:text/html,x"),
            WSFED.replace(" https://portal.corp.example/_trust/ ", "/relative"),
            // No endpoint at all; an endpoint without an address.
            WSFED.replace(
                &WSFED[WSFED.find("<fed:Passive").unwrap()
                    ..WSFED.rfind("</fed:PassiveRequestorEndpoint>").unwrap() + 31],
                "",
            ),
            WSFED.replace(
                "<wsa:Address> https://portal.corp.example/_trust/ </wsa:Address>",
                "",
            ),
            // Two application roles: which one is the trust?
            WSFED.replace(role, &format!("{role}{role}")),
            // The type named in another namespace (prefix bound elsewhere) or not at all.
            WSFED.replace(
                "xmlns:fed=\"http://docs.oasis-open.org/wsfed/federation/200706\"",
                "xmlns:fed=\"urn:evil\"",
            ),
            WSFED.replace("xsi:type=\"fed:ApplicationServiceType\"", ""),
            // An STS (an IdP's metadata) is no application.
            WSFED.replace("fed:ApplicationServiceType", "fed:SecurityTokenServiceType"),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert!(parse_sp_metadata(bad).is_err(), "case {i} accepted: {bad}");
        }
        let endpoint = |host: &str| {
            format!(
                "<fed:PassiveRequestorEndpoint><wsa:EndpointReference xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"><wsa:Address>https://{host}/</wsa:Address></wsa:EndpointReference></fed:PassiveRequestorEndpoint>"
            )
        };
        let with = |extra: String| {
            WSFED.replace("</RoleDescriptor>", &format!("{extra}</RoleDescriptor>"))
        };
        // Twenty identical addresses collapse to one; twenty distinct ones are refused.
        assert!(parse_sp_metadata(&with(endpoint("x.example").repeat(20))).is_ok());
        let distinct = with(
            (0..20)
                .map(|n| endpoint(&format!("x{n}.example")))
                .collect(),
        );
        assert!(parse_sp_metadata(&distinct).is_err());
    }

    #[test]
    fn hostile_metadata_is_refused() {
        let doctype = format!(
            "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>{}",
            SP.replace("https://gw.corp.example\"", "&b;\"")
        );
        assert!(matches!(
            parse_sp_metadata(&doctype),
            Err(MetadataError::Xml(_))
        ));
        let js = SP.replace(
            "https://gw.corp.example/cgi/samlauth",
            "javascript:alert(1)",
        );
        assert!(parse_sp_metadata(&js).is_err());
        let no_id = SP.replace(" entityID=\"https://gw.corp.example\"", "");
        assert!(parse_sp_metadata(&no_id).is_err());
        assert!(parse_sp_metadata("not xml at all").is_err());
        assert!(parse_sp_metadata("<x/>").is_err());
        let bad_cert = SP.replace(
            "<md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact\"",
            "<md:KeyDescriptor><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>!!notbase64</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact\"",
        );
        assert!(parse_sp_metadata(&bad_cert).is_err());
    }
}
