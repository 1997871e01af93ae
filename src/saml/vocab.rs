//! SAML vocabulary shared by the protocol code and the registry: NameID formats, ACS endpoints.

/// SAML core §8.3: the NameID formats we issue and announce in metadata.
pub const NAMEID_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
pub const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

/// One HTTP-POST AssertionConsumerService endpoint of an SP (SAML metadata §2.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acs {
    pub url: String,
    pub index: Option<u16>,
}

/// SAML core §3.4.1: the ACS is chosen by URL (must be registered), else by index, else
/// the default (the first). `None` means the request named an endpoint we do not know.
pub fn pick_acs<'a>(acs: &'a [Acs], url: Option<&str>, index: Option<u16>) -> Option<&'a Acs> {
    match (url, index) {
        (Some(u), _) => acs.iter().find(|a| a.url == u),
        (None, Some(i)) => acs.iter().find(|a| a.index == Some(i)),
        (None, None) => acs.first(),
    }
}

/// Only http(s) URLs with a host may receive assertions: a `javascript:` or `data:` ACS from
/// hostile metadata would otherwise end up in our auto-POST form.
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("`{url}` must be an http(s) URL with a host"));
    }
    Ok(())
}
