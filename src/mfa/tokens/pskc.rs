//! Reads PSKC files (RFC 6030): plain secrets, and secrets encrypted with a pre-shared key.
//!
//! Parsed with the project's hardened parser (`crate::xml`: no DOCTYPE, no entities, size
//! limits). Encrypted secrets follow RFC 6030 §6.1: AES-128-CBC with the IV prepended to the
//! ciphertext, and a `ValueMAC` (HMAC-SHA1 over IV ‖ ciphertext, §6.1.1) keyed with the
//! `MACMethod/MACKey`, itself encrypted under the pre-shared key. A MAC that does not match
//! means the wrong key (or a tampered file) and the row is refused.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::hash::MessageDigest;
use openssl::symm::{Cipher, decrypt};
use subtle::ConstantTimeEq;

use super::{MAX_FILE_BYTES, MAX_ROWS, Mode, ParsedToken, RowProblem, check_serial};
use crate::mfa::oath::{Algorithm, MAX_SECRET_BYTES, MIN_SECRET_BYTES, OathParams};
use crate::mfa::secrets::hmac;
use crate::xml::{self, Element, Limits};

const PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";

/// Reads a PSKC document. `psk` is the pre-shared AES-128 key for encrypted secrets.
/// Rows are `KeyPackage`s, numbered from 1 in document order.
pub fn parse(text: &str, psk: Option<&[u8]>) -> (Vec<ParsedToken>, Vec<RowProblem>) {
    let limits = Limits {
        max_bytes: MAX_FILE_BYTES,
        max_nodes: MAX_ROWS * 40,
        ..Limits::default()
    };
    let root = match xml::parse(text, &limits) {
        Ok(r) => r,
        Err(e) => {
            return (
                Vec::new(),
                vec![RowProblem::file(&format!("XML refused: {e}"))],
            );
        }
    };
    if !root.is(PSKC, "KeyContainer") {
        return (
            Vec::new(),
            vec![RowProblem::file("the root is not a PSKC KeyContainer")],
        );
    }
    let keys = match Keys::from_container(&root, psk) {
        Ok(k) => k,
        Err(reason) => return (Vec::new(), vec![RowProblem::file(&reason)]),
    };
    let mut tokens = Vec::new();
    let mut problems = Vec::new();
    for (i, package) in root.children_named(PSKC, "KeyPackage").enumerate() {
        let row = i + 1;
        let serial = text_of(package, &["DeviceInfo", "SerialNo"]);
        match read_package(package, row, &serial, &keys) {
            Ok(t) => tokens.push(t),
            Err(reason) => problems.push(RowProblem::at(row, &serial, &reason)),
        }
    }
    if tokens.is_empty() && problems.is_empty() {
        problems.push(RowProblem::file("the file holds no KeyPackage"));
    }
    (tokens, problems)
}

/// The decryption and MAC keys of the container (RFC 6030 §6.1).
struct Keys<'a> {
    psk: Option<&'a [u8]>,
    mac_key: Option<Vec<u8>>,
}

impl<'a> Keys<'a> {
    fn from_container(root: &Element, psk: Option<&'a [u8]>) -> Result<Keys<'a>, String> {
        let encrypted = root.child(PSKC, "EncryptionKey").is_some();
        if !encrypted {
            return Ok(Keys { psk, mac_key: None });
        }
        let Some(psk) = psk else {
            return Err("the file is encrypted; give the pre-shared key".into());
        };
        if psk.len() != 16 {
            return Err("the pre-shared key must be 16 bytes (AES-128, 32 hex digits)".into());
        }
        if let Some(name) = root
            .child(PSKC, "EncryptionKey")
            .and_then(|e| e.child(DS, "KeyName"))
        {
            tracing::debug!(key_name = %name.text().trim(), "PSKC pre-shared key name");
        }
        let method = root
            .child(PSKC, "MACMethod")
            .ok_or("an encrypted file needs a MACMethod (RFC 6030 §6.1.1)")?;
        if method.attr("Algorithm") != Some(HMAC_SHA1) {
            return Err("the MAC algorithm must be HMAC-SHA1".into());
        }
        let mac_key = method
            .child(PSKC, "MACKey")
            .ok_or("the MACMethod has no MACKey")?;
        let mac_key = aes_decrypt(mac_key, psk)?;
        Ok(Keys {
            psk: Some(psk),
            mac_key: Some(mac_key),
        })
    }
}

fn read_package(
    p: &Element,
    row: usize,
    serial: &str,
    keys: &Keys<'_>,
) -> Result<ParsedToken, String> {
    check_serial(serial)?;
    let key = p.child(PSKC, "Key").ok_or("the KeyPackage has no Key")?;
    let data = key.child(PSKC, "Data").ok_or("the Key has no Data")?;
    let mode = mode(key, data)?;
    let period = match mode {
        Mode::Totp => time_interval(data)?,
        Mode::Hotp { .. } => 30,
    };
    let params = OathParams {
        algorithm: algorithm(key)?,
        digits: digits(key)?,
        period,
    };
    params.validate().map_err(|e| e.to_string())?;
    let secret = secret(data, keys)?;
    Ok(ParsedToken {
        row,
        serial: serial.to_owned(),
        manufacturer: text_of(p, &["DeviceInfo", "Manufacturer"]),
        model: text_of(p, &["DeviceInfo", "Model"]),
        secret,
        params,
        mode,
        user: None,
    })
}

/// HOTP (`...:pskc:hotp`, with its Counter) or TOTP (`...:pskc:totp` / `...pskc#totp`).
fn mode(key: &Element, data: &Element) -> Result<Mode, String> {
    let alg = key.attr("Algorithm").unwrap_or("");
    let name = alg.rsplit([':', '#']).next().unwrap_or("");
    if !alg.starts_with(PSKC) {
        return Err(format!("unsupported key algorithm `{alg}`"));
    }
    match name {
        "hotp" => {
            let counter = match data.child(PSKC, "Counter") {
                None => 0,
                Some(c) => plain_value(c)?
                    .parse::<u64>()
                    .map_err(|_| "the Counter is not a number")?,
            };
            Ok(Mode::Hotp { counter })
        }
        "totp" => Ok(Mode::Totp),
        _ => Err(format!("unsupported key algorithm `{alg}`")),
    }
}

/// `TimeInterval` (RFC 6030 §4.3.4; some vendors write `TimeStep`), default 30.
fn time_interval(data: &Element) -> Result<u32, String> {
    let el = data
        .child(PSKC, "TimeInterval")
        .or_else(|| data.child(PSKC, "TimeStep"));
    match el {
        None => Ok(30),
        Some(e) => plain_value(e)?
            .parse()
            .map_err(|_| "the time interval is not a number".into()),
    }
}

/// `AlgorithmParameters/Suite` such as `HMAC-SHA256`; SHA-1 when absent (RFC 4226).
fn algorithm(key: &Element) -> Result<Algorithm, String> {
    let suite = text_of(key, &["AlgorithmParameters", "Suite"]);
    if suite.is_empty() {
        return Ok(Algorithm::Sha1);
    }
    suite
        .trim_start_matches("HMAC-")
        .parse()
        .map_err(|e: crate::mfa::oath::OathError| e.to_string())
}

/// `ResponseFormat Length` (RFC 6030 §4.3.2), decimal only.
fn digits(key: &Element) -> Result<u8, String> {
    let Some(rf) = key
        .child(PSKC, "AlgorithmParameters")
        .and_then(|a| a.child(PSKC, "ResponseFormat"))
    else {
        return Ok(6);
    };
    if rf.attr("Encoding").is_some_and(|e| e != "DECIMAL") {
        return Err("only DECIMAL response formats are supported".into());
    }
    rf.attr("Length")
        .unwrap_or("6")
        .parse()
        .map_err(|_| "the ResponseFormat Length is not a number".into())
}

/// The secret: `PlainValue` (base64) or `EncryptedValue` checked against its `ValueMAC`.
fn secret(data: &Element, keys: &Keys<'_>) -> Result<Vec<u8>, String> {
    let s = data.child(PSKC, "Secret").ok_or("the Key has no Secret")?;
    let bytes = if let Some(plain) = s.child(PSKC, "PlainValue") {
        b64(&plain.text())?
    } else if let Some(enc) = s.child(PSKC, "EncryptedValue") {
        let (Some(psk), Some(mac_key)) = (keys.psk, keys.mac_key.as_deref()) else {
            return Err("an encrypted secret in a file without EncryptionKey and MACMethod".into());
        };
        let raw = cipher_value(enc)?;
        let mac = s
            .child(PSKC, "ValueMAC")
            .ok_or("an encrypted secret needs a ValueMAC (RFC 6030 §6.1.1)")?;
        let expected = hmac(MessageDigest::sha1(), mac_key, &raw);
        if !bool::from(expected.ct_eq(&b64(&mac.text())?)) {
            return Err("the MAC does not match: wrong pre-shared key".into());
        }
        cbc_decrypt(&raw, psk)?
    } else {
        return Err("the Secret has neither PlainValue nor EncryptedValue".into());
    };
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "secret has {} bits; at least 128 are required (RFC 4226 §4)",
            bytes.len() * 8
        ));
    }
    if bytes.len() > MAX_SECRET_BYTES {
        return Err("the secret is longer than 1024 bits".into());
    }
    Ok(bytes)
}

/// IV ‖ ciphertext from `xenc:CipherData/CipherValue`, AES-128-CBC only.
fn cipher_value(enc: &Element) -> Result<Vec<u8>, String> {
    let method = enc
        .child(XENC, "EncryptionMethod")
        .and_then(|m| m.attr("Algorithm"));
    if method != Some(AES128_CBC) {
        return Err("the encryption method must be AES-128-CBC".into());
    }
    let value = enc
        .child(XENC, "CipherData")
        .and_then(|c| c.child(XENC, "CipherValue"))
        .ok_or("the EncryptedValue has no CipherValue")?;
    b64(&value.text())
}

/// Decrypts an `xenc` element's value under the pre-shared key (used for the MAC key).
fn aes_decrypt(enc: &Element, psk: &[u8]) -> Result<Vec<u8>, String> {
    cbc_decrypt(&cipher_value(enc)?, psk)
        .map_err(|_| "the MAC key does not decrypt: wrong pre-shared key".into())
}

/// AES-128-CBC with the 16-byte IV in front (XML Encryption §5.2.1) and PKCS#7 padding.
fn cbc_decrypt(raw: &[u8], key: &[u8]) -> Result<Vec<u8>, String> {
    if raw.len() < 32 || !raw.len().is_multiple_of(16) {
        return Err("the encrypted value has a wrong length".into());
    }
    let (iv, ct) = raw.split_at(16);
    decrypt(Cipher::aes_128_cbc(), key, Some(iv), ct)
        .map_err(|_| "the encrypted value does not decrypt: wrong pre-shared key".into())
}

fn plain_value(e: &Element) -> Result<String, String> {
    e.child(PSKC, "PlainValue")
        .map(|v| v.text().trim().to_owned())
        .ok_or_else(|| format!("{} has no PlainValue", e.name))
}

fn b64(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD
        .decode(compact)
        .map_err(|_| "a value is not valid base64".into())
}

/// The trimmed text at a path of PSKC children, "" when absent.
fn text_of(e: &Element, path: &[&str]) -> String {
    let mut cur = Some(e);
    for name in path {
        cur = cur.and_then(|c| c.child(PSKC, name));
    }
    cur.map(|c| c.text().trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document shaped like RFC 6030 §6.1.1's example (Figure 6), encrypted under `psk`
    /// with MAC key `mac_key` the way the RFC describes: IV ‖ AES-128-CBC ciphertext, and
    /// HMAC-SHA1 over that.
    fn encrypted(psk: &[u8], mac_key: &[u8], secret: &[u8]) -> String {
        let enc = |plain: &[u8], iv: [u8; 16]| {
            let mut out = iv.to_vec();
            out.extend(
                openssl::symm::encrypt(Cipher::aes_128_cbc(), psk, Some(&iv), plain).unwrap(),
            );
            out
        };
        let mac_key_enc = STANDARD.encode(enc(mac_key, [0x11; 16]));
        let secret_raw = enc(secret, [0x22; 16]);
        let mac = STANDARD.encode(hmac(MessageDigest::sha1(), mac_key, &secret_raw));
        let secret_enc = STANDARD.encode(secret_raw);
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
  <EncryptionKey><ds:KeyName>Pre-shared-key</ds:KeyName></EncryptionKey>
  <MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1">
    <MACKey>
      <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
      <xenc:CipherData><xenc:CipherValue>{mac_key_enc}</xenc:CipherValue></xenc:CipherData>
    </MACKey>
  </MACMethod>
  <KeyPackage>
    <DeviceInfo><Manufacturer>Manufacturer</Manufacturer><SerialNo>987654321</SerialNo></DeviceInfo>
    <CryptoModuleInfo><Id>CM_ID_001</Id></CryptoModuleInfo>
    <Key Id="12345678" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
      <Issuer>Issuer</Issuer>
      <AlgorithmParameters><ResponseFormat Length="8" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data>
        <Secret>
          <EncryptedValue>
            <xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
            <xenc:CipherData><xenc:CipherValue>{secret_enc}</xenc:CipherValue></xenc:CipherData>
          </EncryptedValue>
          <ValueMAC>{mac}</ValueMAC>
        </Secret>
        <Counter><PlainValue>0</PlainValue></Counter>
      </Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#
        )
    }

    fn rfc_encrypted() -> String {
        // The RFC's keys: PSK 12345678901234567890123456789012, MAC key 1122…9900.
        let mac_key = hex::decode("1122334455667788990011223344556677889900").unwrap();
        encrypted(&psk(), &mac_key, b"12345678901234567890")
    }

    fn psk() -> Vec<u8> {
        hex::decode("12345678901234567890123456789012").unwrap()
    }

    fn plain(serial: &str, alg: &str, extra: &str, secret_b64: &str) -> String {
        format!(
            r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
  <KeyPackage>
    <DeviceInfo><Manufacturer>Vendor</Manufacturer><SerialNo>{serial}</SerialNo><Model>K1</Model></DeviceInfo>
    <Key Id="1" Algorithm="{alg}">
      <AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>
      <Data><Secret><PlainValue>{secret_b64}</PlainValue></Secret>{extra}</Data>
    </Key>
  </KeyPackage>
</KeyContainer>"#
        )
    }

    const SECRET_B64: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTA="; // "12345678901234567890"

    #[test]
    fn rfc6030_encrypted_example_decrypts_with_the_right_key() {
        let (tokens, problems) = parse(&rfc_encrypted(), Some(&psk()));
        assert!(problems.is_empty(), "{problems:?}");
        let t = &tokens[0];
        assert_eq!(t.serial, "987654321");
        assert_eq!(t.secret, b"12345678901234567890");
        assert_eq!(t.params.digits, 8);
        assert_eq!(t.mode, Mode::Hotp { counter: 0 });
    }

    #[test]
    fn rfc6030_figure6_published_values_decrypt() {
        // The values printed in RFC 6030 §6.1.1 Figure 6 (MAC key, IV ‖ ciphertext, ValueMAC),
        // in our generated document's frame; whitespace inside a CipherValue as in the RFC.
        let doc = rfc_encrypted();
        let values: Vec<&str> = doc
            .split("<xenc:CipherValue>")
            .skip(1)
            .map(|v| v.split('<').next().unwrap())
            .collect();
        let mac = doc
            .split("<ValueMAC>")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        let published = doc
            .replace(
                values[0],
                "\n  ESIzRFVmd4iZABEiM0RVZgKn6WjLaTC1sbeBMSvIhRejN9vJa2BOlSaMrR7I5wSX\n",
            )
            .replace(
                values[1],
                "\n  AAECAwQFBgcICQoLDA0OD+cIHItlB3Wra1DUpxVvOx2lef1VmNPCMl8jwZqIUqGv\n",
            )
            .replace(mac, "Su+NvtQfmvfJzF6bmQiJqoLRExc=");
        let (tokens, problems) = parse(&published, Some(&psk()));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(tokens[0].secret, b"12345678901234567890");
    }

    #[test]
    fn wrong_key_is_a_mac_or_decrypt_refusal() {
        let wrong = hex::decode("00112233445566778899aabbccddeeff").unwrap();
        let (tokens, problems) = parse(&rfc_encrypted(), Some(&wrong));
        assert!(tokens.is_empty());
        assert!(
            problems[0].reason.contains("wrong pre-shared key"),
            "{problems:?}"
        );
        let (_, problems) = parse(&rfc_encrypted(), None);
        assert!(problems[0].reason.contains("pre-shared key"));
        // A flipped ciphertext bit with the right key: the MAC refuses it, naming the row.
        let doc = rfc_encrypted();
        let value = doc.split("<xenc:CipherValue>").nth(2).unwrap();
        let value = value.split('<').next().unwrap();
        // The first IV character changes: the MAC covers the IV too.
        let flipped = if value.starts_with('A') { "B" } else { "A" };
        let tampered = doc.replace(value, &format!("{flipped}{}", &value[1..]));
        let (_, problems) = parse(&tampered, Some(&psk()));
        assert_eq!(
            (problems[0].row, problems[0].serial.as_str()),
            (1, "987654321")
        );
        assert!(problems[0].reason.contains("MAC"), "{problems:?}");
    }

    #[test]
    fn plain_totp_and_hotp() {
        let totp = plain(
            "T1",
            "urn:ietf:params:xml:ns:keyprov:pskc#totp",
            "<TimeInterval><PlainValue>60</PlainValue></TimeInterval>",
            SECRET_B64,
        );
        let (tokens, problems) = parse(&totp, None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((tokens[0].mode, tokens[0].params.period), (Mode::Totp, 60));
        assert_eq!(tokens[0].model, "K1");
        let hotp = plain(
            "H1",
            "urn:ietf:params:xml:ns:keyprov:pskc:hotp",
            "<Counter><PlainValue>42</PlainValue></Counter>",
            SECRET_B64,
        );
        let (tokens, _) = parse(&hotp, None);
        assert_eq!(tokens[0].mode, Mode::Hotp { counter: 42 });
    }

    #[test]
    fn hostile_documents_are_refused() {
        let good = plain(
            "T1",
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "",
            SECRET_B64,
        );
        let truncated = &good[..good.len() / 2];
        let (_, p) = parse(truncated, None);
        assert!(p[0].reason.contains("XML refused"), "{p:?}");
        let doctype = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{good}");
        let (_, p) = parse(&doctype, None);
        assert!(p[0].reason.contains("DOCTYPE"), "{p:?}");
        let big = format!("{good}<!--{}-->", "x".repeat(MAX_FILE_BYTES));
        let (_, p) = parse(&big, None);
        assert!(p[0].reason.contains("size"), "{p:?}");
        let (_, p) = parse("<a/>", None);
        assert!(p[0].reason.contains("KeyContainer"));
        let short = plain("T1", "urn:ietf:params:xml:ns:keyprov:pskc:totp", "", "MTIz");
        let (_, p) = parse(&short, None);
        assert!(p[0].reason.contains("128"), "{p:?}");
        let odd = plain(
            "T1",
            "urn:ietf:params:xml:ns:keyprov:pskc:ocra",
            "",
            SECRET_B64,
        );
        let (_, p) = parse(&odd, None);
        assert!(p[0].reason.contains("unsupported"), "{p:?}");
        let interval = plain(
            "T1",
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "<TimeInterval><PlainValue>45</PlainValue></TimeInterval>",
            SECRET_B64,
        );
        let (_, p) = parse(&interval, None);
        assert!(p[0].reason.contains("30 or 60"), "{p:?}");
        let digits = plain(
            "T1",
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "",
            SECRET_B64,
        )
        .replace("Length=\"6\"", "Length=\"4\"");
        let (_, p) = parse(&digits, None);
        assert!(p[0].reason.contains("6, 7 or 8"), "{p:?}");
        let no_serial = plain(
            "",
            "urn:ietf:params:xml:ns:keyprov:pskc:totp",
            "",
            SECRET_B64,
        );
        let (_, p) = parse(&no_serial, None);
        assert!(p[0].reason.contains("serial"), "{p:?}");
    }
}
