//! Federation metadata for a WS-Federation relying party registered by hand (`tessera rp
//! add --wsfed`): the document its own metadata would be, so the trust is stored, shown and
//! changed exactly like an imported one.

use crate::saml::NS_MD;
use crate::saml::metadata::{NS_FED, NS_WSA, NS_XSI};
use crate::xmldsig::emit::{El, document};

/// An EntityDescriptor for `realm` with one `fed:ApplicationServiceType` role whose
/// PassiveRequestorEndpoints are `replies` (the first is the default reply URL). The
/// caller checks the URLs; `saml::metadata::parse_sp_metadata` reads the result back.
pub fn application(realm: &str, replies: &[String]) -> String {
    let endpoints = replies.iter().map(|url| {
        El::new("fed", "PassiveRequestorEndpoint", NS_FED).child(
            El::new("wsa", "EndpointReference", NS_WSA)
                .child(El::new("wsa", "Address", NS_WSA).text(url.clone())),
        )
    });
    let role = El::new("md", "RoleDescriptor", NS_MD)
        .declare("fed", NS_FED)
        .attr_ns("xsi", "type", NS_XSI, "fed:ApplicationServiceType")
        .attr("protocolSupportEnumeration", NS_FED)
        .children(endpoints);
    let root = El::new("md", "EntityDescriptor", NS_MD)
        .attr("entityID", realm)
        .child(role);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
        document(&root)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::metadata::{SpProtocol, parse_sp_metadata};

    #[test]
    fn reads_back_as_a_wsfed_trust() {
        let xml = application(
            "urn:app:one & <two>",
            &[
                "https://app.example/".into(),
                "https://app.example/alt".into(),
            ],
        );
        let md = parse_sp_metadata(&xml).expect("parses");
        assert_eq!(md.protocol, SpProtocol::Wsfed);
        assert_eq!(md.entity_id, "urn:app:one & <two>");
        let urls: Vec<&str> = md.acs.iter().map(|a| a.url.as_str()).collect();
        assert_eq!(urls, ["https://app.example/", "https://app.example/alt"]);
    }
}
