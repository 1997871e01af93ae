//! A hand-made SAML SP for hostile-input tests: builds, signs and tampers AuthnRequests.

#![allow(dead_code)]

use std::io::Write;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;
use openssl::x509::X509;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tessera::xmldsig::emit::{El, c14n};
use tessera::xmldsig::sign::{SigningKey, sign_enveloped};

pub const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

pub struct TestSp {
    pub entity_id: String,
    pub acs: String,
    pub key: PKey<Private>,
    pub cert: X509,
}

pub struct Req {
    pub id: String,
    pub acs: Option<String>,
    pub issue_instant: String,
    pub destination: Option<String>,
    pub force_authn: bool,
    pub is_passive: bool,
    pub context: Option<(&'static str, Vec<&'static str>)>,
}

impl TestSp {
    pub fn new(name: &str) -> Self {
        let (key, cert) = tessera::keys::generate(name, 30).expect("sp key");
        Self {
            entity_id: format!("https://{name}.sp.test"),
            acs: format!("https://{name}.sp.test/acs"),
            key,
            cert,
        }
    }

    pub fn metadata(&self, signed_requests: bool) -> String {
        let der =
            base64::engine::general_purpose::STANDARD.encode(self.cert.to_der().expect("der"));
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}"><md:SPSSODescriptor AuthnRequestsSigned="{}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{}"/><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
            self.entity_id,
            signed_requests,
            der,
            self.slo(),
            self.acs
        )
    }

    pub fn slo(&self) -> String {
        self.acs.replace("/acs", "/slo")
    }

    /// A LogoutRequest for `name_id` (SAML core §3.7.1).
    pub fn logout_xml(&self, name_id: &str, session_index: &str) -> String {
        let e = El::new("samlp", "LogoutRequest", NS_SAMLP)
            .attr("ID", format!("_{}", tessera::saml::random_hex(16)))
            .attr(
                "IssueInstant",
                tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
            )
            .attr("Version", "2.0")
            .child(El::new("saml", "Issuer", NS_SAML).text(self.entity_id.clone()))
            .child(El::new("saml", "NameID", NS_SAML).text(name_id))
            .child(El::new("samlp", "SessionIndex", NS_SAMLP).text(session_index));
        c14n(&e)
    }

    pub fn req(&self) -> Req {
        Req {
            id: format!("_{}", tessera::saml::random_hex(16)),
            acs: Some(self.acs.clone()),
            issue_instant: tessera::saml::saml_time(time::OffsetDateTime::now_utc()),
            destination: None,
            force_authn: false,
            is_passive: false,
            context: None,
        }
    }

    pub fn element(&self, r: &Req) -> El {
        let mut e = El::new("samlp", "AuthnRequest", NS_SAMLP)
            .attr("ID", r.id.clone())
            .attr("IssueInstant", r.issue_instant.clone())
            .attr("Version", "2.0")
            .attr(
                "ProtocolBinding",
                "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            );
        if let Some(a) = &r.acs {
            e = e.attr("AssertionConsumerServiceURL", a.clone());
        }
        if let Some(d) = &r.destination {
            e = e.attr("Destination", d.clone());
        }
        if r.force_authn {
            e = e.attr("ForceAuthn", "true");
        }
        if r.is_passive {
            e = e.attr("IsPassive", "true");
        }
        e = e.child(El::new("saml", "Issuer", NS_SAML).text(self.entity_id.clone()));
        if let Some((cmp, classes)) = &r.context {
            e = e.child(
                El::new("samlp", "RequestedAuthnContext", NS_SAMLP)
                    .attr("Comparison", *cmp)
                    .children(
                        classes
                            .iter()
                            .map(|c| El::new("saml", "AuthnContextClassRef", NS_SAML).text(*c)),
                    ),
            );
        }
        e
    }

    pub fn xml(&self, r: &Req) -> String {
        c14n(&self.element(r))
    }

    /// The request enveloped-signed for the POST binding.
    pub fn signed_xml(&self, r: &Req, key: &PKey<Private>, cert: &X509) -> String {
        let mut e = self.element(r);
        let signer = SigningKey::new(key.clone(), cert).expect("signer");
        sign_enveloped(&mut e, &signer, 1).expect("sign");
        c14n(&e)
    }

    /// A Redirect-binding query string; signed with `key` when given (SAML bindings §3.4.4.1).
    pub fn redirect_query(
        &self,
        xml: &str,
        relay_state: Option<&str>,
        sign: Option<(&PKey<Private>, &str)>,
    ) -> String {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(xml.as_bytes()).expect("deflate");
        let b64 = base64::engine::general_purpose::STANDARD.encode(enc.finish().expect("finish"));
        let mut q = format!(
            "SAMLRequest={}",
            utf8_percent_encode(&b64, NON_ALPHANUMERIC)
        );
        if let Some(rs) = relay_state {
            q.push_str(&format!(
                "&RelayState={}",
                utf8_percent_encode(rs, NON_ALPHANUMERIC)
            ));
        }
        if let Some((key, alg)) = sign {
            q.push_str(&format!(
                "&SigAlg={}",
                utf8_percent_encode(alg, NON_ALPHANUMERIC)
            ));
            let md = if alg == RSA_SHA1 {
                MessageDigest::sha1()
            } else {
                MessageDigest::sha256()
            };
            let mut s = Signer::new(md, key).expect("signer");
            s.update(q.as_bytes()).expect("update");
            let sig =
                base64::engine::general_purpose::STANDARD.encode(s.sign_to_vec().expect("sign"));
            q.push_str(&format!(
                "&Signature={}",
                utf8_percent_encode(&sig, NON_ALPHANUMERIC)
            ));
        }
        q
    }

    pub fn post_b64(xml: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(xml.as_bytes())
    }
}
