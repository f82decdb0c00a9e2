//! Access control as ZooKeeper 3.8's server applies it: `ZooKeeperServer.checkACL`,
//! `PrepRequestProcessor.fixupACL` and the built-in `digest` and `ip` authentication providers.
//!
//! The caller's authenticated ids (what the connection collected through `addauth`, its `ip:`
//! id, a `super:` id for the super user) come in as a slice; nothing here keeps state.

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use sluice_jute::{perms, Acl, ErrorCode, Id};

pub const SCHEME_WORLD: &str = "world";
pub const SCHEME_AUTH: &str = "auth";
pub const SCHEME_DIGEST: &str = "digest";
pub const SCHEME_IP: &str = "ip";
pub const SCHEME_SUPER: &str = "super";

/// `world:anyone` with every permission (`Ids.OPEN_ACL_UNSAFE`).
pub fn open_acl_unsafe() -> Vec<Acl> {
    Acl::open_unsafe()
}

/// `world:anyone` with READ only (`Ids.READ_ACL_UNSAFE`), the ACL of `/zookeeper/config`.
pub fn read_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::READ,
        id: Id {
            scheme: SCHEME_WORLD.into(),
            id: "anyone".into(),
        },
    }]
}

/// True when `ids` may do `perm` on a node whose ACL is `acl` (`ZooKeeperServer.checkACL`).
///
/// An empty ACL allows everything, a `super` id allows everything, otherwise some entry that
/// grants one of the bits of `perm` must be `world:anyone` or match one of the caller's ids of
/// the same scheme.
pub fn check_acl(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == SCHEME_SUPER) {
        return true;
    }
    acl.iter().any(|a| {
        if a.perms & perm == 0 {
            return false;
        }
        if a.id.scheme == SCHEME_WORLD && a.id.id == "anyone" {
            return true;
        }
        ids.iter().any(|caller| {
            caller.scheme == a.id.scheme && provider_matches(&a.id.scheme, &caller.id, &a.id.id)
        })
    })
}

/// `AuthenticationProvider.matches` of the providers ZooKeeper registers by default.
fn provider_matches(scheme: &str, id: &str, acl_expr: &str) -> bool {
    match scheme {
        SCHEME_DIGEST => id == acl_expr,
        SCHEME_IP => ip_matches(id, acl_expr),
        _ => false,
    }
}

/// Schemes whose ids count for `auth` expansion (`isAuthenticated()`): only `digest` among the
/// default providers; `ip` ids are not "authenticated" and `super` has no provider.
fn is_authenticated_scheme(scheme: &str) -> bool {
    scheme == SCHEME_DIGEST
}

/// Checks and expands an ACL given on create/setACL (`PrepRequestProcessor.fixupACL`):
/// duplicates are dropped (first kept), `auth` entries become one entry per authenticated id of
/// the caller, and every other entry must be `world:anyone` or a valid `digest`/`ip` id.
pub fn fixup_acl(ids: &[Id], acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        let scheme = a.id.scheme.as_str();
        if scheme == SCHEME_WORLD && a.id.id == "anyone" {
            out.push(a.clone());
        } else if scheme == SCHEME_AUTH {
            let mut any = false;
            for caller in ids.iter().filter(|i| is_authenticated_scheme(&i.scheme)) {
                any = true;
                out.push(Acl {
                    perms: a.perms,
                    id: caller.clone(),
                });
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if provider_is_valid(scheme, &a.id.id) {
            out.push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// `AuthenticationProvider.isValid`; unknown schemes (no provider) are invalid.
fn provider_is_valid(scheme: &str, id: &str) -> bool {
    match scheme {
        SCHEME_DIGEST => java_split_count(id, ':') == 2,
        SCHEME_IP => ip_is_valid(id),
        _ => false,
    }
}

/// Number of parts Java's `String.split(sep)` yields: trailing empty strings are dropped, and a
/// string without the separator is one part.
fn java_split_count(s: &str, sep: char) -> usize {
    if !s.contains(sep) {
        return 1;
    }
    let parts: Vec<&str> = s.split(sep).collect();
    let trailing_empty = parts.iter().rev().take_while(|p| p.is_empty()).count();
    parts.len() - trailing_empty
}

/// `DigestAuthenticationProvider.generateDigest("user:password")`:
/// `user:base64(sha1("user:password"))`, the id a digest ACL names.
pub fn generate_digest(id_password: &str) -> String {
    let user = id_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(id_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// What `getACL` shows a caller without ADMIN: digest ids with everything after the user name
/// replaced by `x` (ZooKeeper's `id.replaceAll(":.*", ":x")`; `.` stops at line terminators).
pub fn mask_digest_ids(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme != SCHEME_DIGEST {
                return a.clone();
            }
            let mut masked = String::with_capacity(a.id.id.len());
            let mut skipping = false;
            for c in a.id.id.chars() {
                let terminator = matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
                if skipping && !terminator {
                    continue;
                }
                skipping = false;
                if c == ':' {
                    masked.push_str(":x");
                    skipping = true;
                } else {
                    masked.push(c);
                }
            }
            Acl {
                perms: a.perms,
                id: Id {
                    scheme: a.id.scheme.clone(),
                    id: masked,
                },
            }
        })
        .collect()
}

/// `IPAuthenticationProvider.v4addr2Bytes`: four dot-separated decimal numbers 0..=255
/// (Java's `Integer.parseInt`, so a sign is accepted). IPv6 is not supported, as in ZooKeeper.
fn ipv4_bytes(addr: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = addr.split('.');
    for b in &mut out {
        let v: i32 = parts.next()?.parse().ok()?;
        *b = u8::try_from(v).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// Parses `addr[/bits]`; `bits` must be 0..=32.
fn ip_expr(expr: &str) -> Option<([u8; 4], u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = ipv4_bytes(addr)?;
    let bits = match bits {
        Some(b) => {
            let v: i32 = b.parse().ok()?;
            u32::try_from(v).ok().filter(|v| *v <= 32)?
        }
        None => 32,
    };
    Some((bytes, bits))
}

fn mask(addr: [u8; 4], bits: u32) -> u32 {
    let v = u32::from_be_bytes(addr);
    if bits == 0 {
        0
    } else {
        v & (u32::MAX << (32 - bits))
    }
}

fn ip_is_valid(expr: &str) -> bool {
    ip_expr(expr).is_some()
}

fn ip_matches(id: &str, expr: &str) -> bool {
    let Some((acl_addr, bits)) = ip_expr(expr) else {
        return false;
    };
    let Some(remote) = ipv4_bytes(id) else {
        return false;
    };
    mask(acl_addr, bits) == mask(remote, bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    fn acl(perms: i32, scheme: &str, i: &str) -> Acl {
        Acl {
            perms,
            id: id(scheme, i),
        }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // `DigestAuthenticationProvider.generateDigest("super:test")` as ZooKeeper documents it.
        assert_eq!(
            generate_digest("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
        assert_eq!(
            generate_digest("user:pass:word"),
            format!(
                "user:{}",
                base64::engine::general_purpose::STANDARD.encode(Sha1::digest(b"user:pass:word"))
            )
        );
    }

    #[test]
    fn world_digest_ip_super() {
        let bob = generate_digest("bob:secret");
        let a = vec![
            acl(perms::READ, "world", "anyone"),
            acl(perms::ALL, "digest", &bob),
            acl(perms::WRITE, "ip", "10.1.0.0/16"),
        ];
        assert!(check_acl(&a, perms::READ, &[]));
        assert!(!check_acl(&a, perms::DELETE, &[]));
        assert!(check_acl(&a, perms::DELETE, &[id("digest", &bob)]));
        assert!(!check_acl(&a, perms::DELETE, &[id("digest", "bob:wrong")]));
        assert!(check_acl(&a, perms::WRITE, &[id("ip", "10.1.200.3")]));
        assert!(!check_acl(&a, perms::WRITE, &[id("ip", "10.2.0.1")]));
        assert!(!check_acl(&a, perms::ADMIN, &[id("ip", "10.1.0.1")]));
        assert!(check_acl(&a, perms::ADMIN, &[id("super", "")]));
        assert!(check_acl(&[], perms::ADMIN, &[]));
        // A scheme without a provider never matches.
        let b = vec![acl(perms::ALL, "sasl", "bob")];
        assert!(!check_acl(&b, perms::READ, &[id("sasl", "bob")]));
        // READ|ADMIN is satisfied by either bit.
        assert!(check_acl(&a, perms::READ | perms::ADMIN, &[]));
    }

    #[test]
    fn ip_rules() {
        assert!(ip_is_valid("1.2.3.4"));
        assert!(ip_is_valid("1.2.3.4/0"));
        assert!(ip_is_valid("1.2.3.4/32"));
        assert!(!ip_is_valid("1.2.3.4/33"));
        assert!(!ip_is_valid("1.2.3.4/-1"));
        assert!(!ip_is_valid("1.2.3"));
        assert!(!ip_is_valid("1.2.3.4.5"));
        assert!(!ip_is_valid("1.2.3.256"));
        assert!(!ip_is_valid("1.2.3."));
        assert!(!ip_is_valid("::1"));
        assert!(ip_matches("9.9.9.9", "1.2.3.4/0"));
        assert!(ip_matches("1.2.3.4", "1.2.3.4"));
        assert!(!ip_matches("1.2.3.5", "1.2.3.4"));
        assert!(ip_matches("1.2.3.5", "1.2.3.4/31"));
        assert!(ip_matches("1.2.3.127", "1.2.3.4/25"));
        assert!(!ip_matches("1.2.3.128", "1.2.3.4/25"));
        assert!(!ip_matches("bogus", "1.2.3.4/0"));
    }

    #[test]
    fn fixup() {
        let bob = generate_digest("bob:secret");
        // Empty or all-duplicates-of-nothing: invalid.
        assert_eq!(fixup_acl(&[], &[]), Err(ErrorCode::InvalidAcl));
        // Duplicates dropped.
        let w = acl(perms::ALL, "world", "anyone");
        assert_eq!(fixup_acl(&[], &[w.clone(), w.clone()]), Ok(vec![w.clone()]));
        // world:other, unknown schemes, super, malformed digest/ip: invalid.
        for bad in [
            acl(perms::ALL, "world", "someone"),
            acl(perms::ALL, "super", ""),
            acl(perms::ALL, "sasl", "bob"),
            acl(perms::ALL, "digest", "bob"),
            acl(perms::ALL, "digest", "bob:a:b"),
            acl(perms::ALL, "ip", "1.2.3.4/40"),
        ] {
            assert_eq!(
                fixup_acl(&[], std::slice::from_ref(&bad)),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
        // Java's split drops the trailing empty part, so `bob:abc:` is a valid digest id.
        assert!(fixup_acl(&[], &[acl(perms::ALL, "digest", "bob:abc:")]).is_ok());
        // auth expands to the caller's authenticated (digest) ids only.
        let callers = [id("ip", "1.2.3.4"), id("digest", &bob), id("super", "")];
        assert_eq!(
            fixup_acl(&callers, &[acl(perms::READ, "auth", "")]),
            Ok(vec![acl(perms::READ, "digest", &bob)])
        );
        assert_eq!(
            fixup_acl(&[id("ip", "1.2.3.4")], &[acl(perms::READ, "auth", "")]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn masking() {
        let a = vec![
            acl(perms::ALL, "digest", "bob:abc="),
            acl(perms::ALL, "ip", "1.2.3.4"),
            acl(perms::ALL, "digest", "a:b\nc:d"),
        ];
        let m = mask_digest_ids(&a);
        assert_eq!(m[0].id.id, "bob:x");
        assert_eq!(m[1].id.id, "1.2.3.4");
        assert_eq!(m[2].id.id, "a:x\nc:x");
    }

    #[test]
    fn split_count() {
        assert_eq!(java_split_count("", ':'), 1);
        assert_eq!(java_split_count(":", ':'), 0);
        assert_eq!(java_split_count("a:b", ':'), 2);
        assert_eq!(java_split_count(":b", ':'), 2);
        assert_eq!(java_split_count("a:", ':'), 1);
        assert_eq!(java_split_count("a::b", ':'), 3);
    }
}
