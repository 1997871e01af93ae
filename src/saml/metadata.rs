//! SAML metadata: our signed IdP metadata out, SP metadata in (parsed defensively).

use base64::Engine;
use openssl::x509::X509;

use crate::xml::{self, Element, Limits};
use crate::xmldsig::emit::{El, c14n};
use crate::xmldsig::sign::{SigningKey, sign_enveloped};

use super::request::Binding;
use super::vocab::{
    Acs, NAMEID_EMAIL, NAMEID_PERSISTENT, NAMEID_TRANSIENT, NAMEID_UNSPECIFIED, check_endpoint_url,
};
use super::{BINDING_POST, BINDING_REDIRECT, NS_DS, NS_MD, NS_SAMLP};

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
    let mut root = El::new("md", "EntityDescriptor", NS_MD)
        .attr("ID", super::new_id())
        .attr("entityID", ep.entity_id.clone())
        .child(idp);
    // Metadata schema: ds:Signature is the first child of EntityDescriptor.
    sign_enveloped(&mut root, keys.signer(), 0)?;
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        c14n(&root)
    ))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error("metadata is not well-formed or safe XML: {0}")]
    Xml(String),
    #[error("metadata: {0}")]
    Invalid(String),
}

/// What we take from an SP's metadata.
#[derive(Debug, Clone)]
pub struct SpMetadata {
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
            .filter(|e| e.child(NS_MD, "SPSSODescriptor").is_some())
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
    let sp = entity
        .child(NS_MD, "SPSSODescriptor")
        .ok_or_else(|| MetadataError::Invalid("no SPSSODescriptor".into()))?;
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

    let mut certs = Vec::new();
    for kd in sp.children_named(NS_MD, "KeyDescriptor") {
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
    Ok(SpMetadata {
        entity_id,
        acs,
        slo,
        slo_binding,
        certs,
        authn_requests_signed: flag("AuthnRequestsSigned"),
        want_assertions_signed: flag("WantAssertionsSigned"),
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
