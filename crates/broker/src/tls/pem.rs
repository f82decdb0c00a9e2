//! PEM as Kafka reads it (KIP-651): `-----BEGIN X-----` / `-----END X-----` blocks whose base64
//! may be split over lines or not at all, since a value in a properties file written with `\`
//! continuations loses its line breaks. Bytes in, DER blocks out; no I/O.

use base64::Engine;

/// One decoded block: its label (`CERTIFICATE`, `PRIVATE KEY`, ...) and DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every block of `text`, in order; what lies between blocks (comments, `Bag Attributes` of
/// `openssl pkcs12` output) is skipped.
pub fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or("a `-----BEGIN` line is not closed by `-----`")?;
        let label = after[..label_end].trim().to_string();
        let body_and_rest = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_and_rest
            .find(&end_marker)
            .ok_or_else(|| format!("`-----BEGIN {label}-----` has no `{end_marker}`"))?;
        let body = &body_and_rest[..end];
        if body.contains("Proc-Type:") || body.contains("DEK-Info:") {
            return Err(format!(
                "the {label} is encrypted the old OpenSSL way (Proc-Type/DEK-Info); convert it to PKCS#8 with `openssl pkcs8 -topk8 -in key.pem -out key-pkcs8.pem` (add -nocrypt for an unencrypted key)"
            ));
        }
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("the {label} block is not valid base64: {e}"))?;
        out.push(Block { label, der });
        rest = &body_and_rest[end + end_marker.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn blocks_with_and_without_line_breaks() {
        let two = "junk\n-----BEGIN CERTIFICATE-----\nAQID\nBA==\n-----END CERTIFICATE-----\nBag Attributes\n-----BEGIN PRIVATE KEY-----BQY=-----END PRIVATE KEY-----";
        let blocks = parse(two).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].der, vec![1, 2, 3, 4]);
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(blocks[1].der, vec![5, 6]);
        assert!(parse("-----BEGIN CERTIFICATE-----\nAQID").is_err());
        assert!(parse("-----BEGIN X-----\n!!!\n-----END X-----").is_err());
        assert!(parse("nothing here").unwrap().is_empty());
    }
}
