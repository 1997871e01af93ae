//! Directory entry to `UserInfo`: lower-cased attributes, mapped fields and group names.

use std::collections::BTreeMap;

use base64::Engine as _;
use ldap3::SearchEntry;

use super::LdapDirectory;
use crate::directory::UserInfo;

/// All attributes of an entry with lower-cased names (LDAP names are case-insensitive,
/// RFC 4512 §2.5). Binary values (e.g. objectGUID) are base64, as AD FS shows them.
pub(super) fn lower_attrs(entry: &SearchEntry) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, values) in &entry.attrs {
        out.entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().cloned());
    }
    for (name, values) in &entry.bin_attrs {
        out.entry(name.to_ascii_lowercase()).or_default().extend(
            values
                .iter()
                .map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
        );
    }
    out
}

impl LdapDirectory {
    /// The user's name as the directory spells it (the username attribute), else as typed.
    pub(super) fn username(&self, attrs: &BTreeMap<String, Vec<String>>, typed: &str) -> String {
        attrs
            .get(&self.settings.attributes.username.to_ascii_lowercase())
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| typed.to_string())
    }

    pub(super) fn user_info(
        &self,
        entry: SearchEntry,
        attrs: BTreeMap<String, Vec<String>>,
        typed: &str,
    ) -> UserInfo {
        let names = &self.settings.attributes;
        let first = |name: &str| {
            attrs
                .get(&name.to_ascii_lowercase())
                .and_then(|v| v.first())
                .cloned()
        };
        let groups = attrs
            .get(&names.groups.to_ascii_lowercase())
            .map(|dns| dns.iter().map(|dn| group_name(dn)).collect())
            .unwrap_or_default();
        UserInfo {
            username: self.username(&attrs, typed),
            upn: first(&names.upn),
            mail: first(&names.mail),
            display_name: first(&names.display_name),
            mobile: first(&names.mobile),
            telephone: first(&names.telephone),
            groups,
            attributes: attrs
                .iter()
                .filter(|(k, _)| self.reported_attributes.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dn: entry.dn,
        }
    }
}

/// The display name of a group: the value of the first RDN when it is a CN
/// (`CN=Gateway Users,OU=Groups,...` -> `Gateway Users`), with RFC 4514 §2.4 escapes undone;
/// otherwise the whole DN.
pub fn group_name(dn: &str) -> String {
    let mut attr = String::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    let mut bytes = dn.as_bytes().iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => {
                let Some(next) = bytes.next() else { break };
                let hex_pair =
                    next.is_ascii_hexdigit() && bytes.peek().is_some_and(|p| p.is_ascii_hexdigit());
                let byte = if hex_pair {
                    let low = bytes.next().unwrap_or(b'0');
                    let digits = [next, low];
                    std::str::from_utf8(&digits)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .unwrap_or(next)
                } else {
                    next
                };
                if in_value {
                    value.push(byte);
                }
            }
            b',' | b'+' if in_value => break,
            b'=' if !in_value => in_value = true,
            _ if in_value => value.push(b),
            _ => attr.push(b as char),
        }
    }
    if in_value && attr.trim().eq_ignore_ascii_case("cn") {
        String::from_utf8_lossy(&value).trim().to_string()
    } else {
        dn.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_first_cn() {
        assert_eq!(
            group_name("CN=Gateway Users,OU=Groups,DC=corp,DC=example"),
            "Gateway Users"
        );
        assert_eq!(group_name("cn=Staff,ou=groups,dc=corp,dc=example"), "Staff");
        assert_eq!(group_name("CN=R\\26D\\, Lab,OU=x"), "R&D, Lab");
        assert_eq!(group_name("CN=\\C3\\86gir,OU=x"), "Ægir");
        assert_eq!(group_name("cn=a+uid=b,dc=x"), "a");
        assert_eq!(group_name("ou=Odd,dc=x"), "ou=Odd,dc=x");
    }
}
