//! ACL text in and out, as zkCli reads and prints it.
//!
//! In: `scheme:id:perms[,scheme:id:perms...]` (zkCli's `AclParser`); the id is everything between
//! the first and the last colon, so `digest:user:HASH:cdrwa` and `ip:127.0.0.1:r` both work. Bad
//! entries and unknown permission letters are reported and skipped, not fatal, exactly as there.
//!
//! Out: `getAcl` prints each entry as Java's generated `Id.toString()` (a CSV record with `'`
//! before each string and a newline after the record) followed by `: ` and the permission
//! letters in zkCli's order `cdrwa`.

use zookeeper_client::{Acl, AuthId, Permission};

/// Entries parsed from `text`, and the complaints zkCli prints on stderr while parsing.
#[derive(Debug)]
pub struct ParsedAcl {
    pub acl: Vec<Acl>,
    pub warnings: Vec<String>,
}

pub fn parse(text: &str) -> ParsedAcl {
    let mut acl = Vec::new();
    let mut warnings = Vec::new();
    for entry in java_split_comma(text) {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            warnings.push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        }
        let mut perms = Permission::NONE;
        for c in entry[last + 1..].chars() {
            perms = perms
                | match c {
                    'r' => Permission::READ,
                    'w' => Permission::WRITE,
                    'c' => Permission::CREATE,
                    'd' => Permission::DELETE,
                    'a' => Permission::ADMIN,
                    other => {
                        warnings.push(format!("Unknown perm type: {other}"));
                        Permission::NONE
                    }
                };
        }
        let id = AuthId::new(&entry[..first], &entry[first + 1..last]);
        acl.push(Acl::new(perms, id));
    }
    ParsedAcl { acl, warnings }
}

/// Java's `String.split(",")`: trailing empty pieces are dropped, but a lone empty string stays.
fn java_split_comma(text: &str) -> Vec<&str> {
    let mut pieces: Vec<&str> = text.split(',').collect();
    while pieces.len() > 1 && pieces.last() == Some(&"") {
        pieces.pop();
    }
    if text.is_empty() {
        return vec![""];
    }
    // "," alone splits into nothing in Java.
    if pieces.len() == 1 && pieces[0].is_empty() {
        return Vec::new();
    }
    pieces
}

/// zkCli's `ZKUtil.getPermString`: letters in the order c, d, r, w, a.
pub fn perm_string(perms: Permission) -> String {
    [
        (Permission::CREATE, 'c'),
        (Permission::DELETE, 'd'),
        (Permission::READ, 'r'),
        (Permission::WRITE, 'w'),
        (Permission::ADMIN, 'a'),
    ]
    .into_iter()
    .filter(|(p, _)| perms & *p != Permission::NONE)
    .map(|(_, c)| c)
    .collect()
}

/// One `getAcl` entry: `'world,'anyone` newline `: cdrwa`.
pub fn format_entry(acl: &Acl) -> String {
    format!(
        "'{},'{}\n: {}",
        csv_escape(acl.scheme()),
        csv_escape(acl.id()),
        perm_string(acl.permission())
    )
}

/// Escapes of jute's `ToStringOutputArchive` (x509 ids hold commas, for instance).
fn csv_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_with_colons_in_the_id() {
        let parsed = parse("world:anyone:cdrwa,digest:user:smGaoVKd/cQkjm7b88GyorAUz20=:r");
        assert!(parsed.warnings.is_empty());
        assert_eq!(parsed.acl.len(), 2);
        assert_eq!(parsed.acl[0].scheme(), "world");
        assert_eq!(parsed.acl[0].id(), "anyone");
        assert_eq!(parsed.acl[0].permission(), Permission::ALL);
        assert_eq!(parsed.acl[1].id(), "user:smGaoVKd/cQkjm7b88GyorAUz20=");
        assert_eq!(parsed.acl[1].permission(), Permission::READ);
    }

    #[test]
    fn bad_entries_are_skipped_with_zkcli_warnings() {
        let parsed = parse("bogus,world:anyone:rxz");
        assert_eq!(
            parsed.warnings,
            [
                "bogus does not have the form scheme:id:perm",
                "Unknown perm type: x",
                "Unknown perm type: z"
            ]
        );
        assert_eq!(parsed.acl.len(), 1);
        assert_eq!(parsed.acl[0].permission(), Permission::READ);
        assert!(parse("world:anyone").acl.is_empty());
        assert_eq!(
            parse("").warnings,
            [" does not have the form scheme:id:perm"]
        );
    }

    #[test]
    fn empty_perms_are_allowed() {
        let parsed = parse("world:anyone:");
        assert_eq!(parsed.acl[0].permission(), Permission::NONE);
    }

    #[test]
    fn prints_like_zkcli() {
        let acl = Acl::new(Permission::ALL, AuthId::anyone());
        assert_eq!(format_entry(&acl), "'world,'anyone\n: cdrwa");
        let acl = Acl::new(
            Permission::READ | Permission::ADMIN,
            AuthId::new("x509", "CN=a,O=b%}"),
        );
        assert_eq!(format_entry(&acl), "'x509,'CN=a%2CO=b%25%7D\n: ra");
        assert_eq!(perm_string(Permission::NONE), "");
    }
}
