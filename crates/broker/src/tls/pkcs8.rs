//! Encrypted PKCS#8 private keys (`-----BEGIN ENCRYPTED PRIVATE KEY-----`), the form Kafka's PEM
//! keystores take with `ssl.key.password`. Two schemes:
//!
//! - `pbeWithSHAAnd3-KeyTripleDES-CBC` (PKCS#12 key derivation with SHA-1, 3DES-CBC), what
//!   `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES` writes: the scheme Kafka's own (Java) PEM loader
//!   can read, so keys from a Kafka installation use it;
//! - PBES2 with PBKDF2 (HMAC-SHA1/256/384/512, ring) and AES-128/192/256-CBC, what
//!   `openssl pkcs8 -topk8` writes by default (Java cannot read these).
//!
//! ```text
//!  EncryptedPrivateKeyInfo ─┬─ PBES2 ─┬─ PBKDF2 (salt, iterations, PRF) ─► key
//!                           │         └─ AES-CBC (IV) ───────────────────► decrypt ─► PKCS#8
//!                           └─ PBE-SHA1-3DES (salt, iterations) ─► key, IV ─► decrypt ─┘
//! ```
//!
//! Encrypted DER and a password in, the plain PKCS#8 DER out.

use std::num::NonZeroU32;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use sha1::{Digest, Sha1};

use super::der::{oid_string, tlv};

const PBES2: &str = "1.2.840.113549.1.5.13";
const PBKDF2: &str = "1.2.840.113549.1.5.12";
const PBE_SHA1_3DES: &str = "1.2.840.113549.1.12.1.3";

/// How a key was encrypted with PBES2, read from its DER.
struct Scheme<'a> {
    prf: ring::pbkdf2::Algorithm,
    salt: &'a [u8],
    iterations: NonZeroU32,
    cipher: &'static str,
    iv: &'a [u8],
    data: &'a [u8],
}

fn malformed() -> String {
    "the encrypted private key is malformed".to_string()
}

/// The encryption algorithm's OID and parameters, and the encrypted bytes.
fn parts(der: &[u8]) -> Result<(String, &[u8], &[u8]), String> {
    let (info, _) = tlv(der).ok_or_else(malformed)?;
    let (alg, rest) = tlv(info.content).ok_or_else(malformed)?;
    let (data, _) = tlv(rest).ok_or_else(malformed)?;
    let (alg_oid, params) = tlv(alg.content).ok_or_else(malformed)?;
    let alg_oid = oid_string(alg_oid.content).ok_or_else(malformed)?;
    Ok((alg_oid, params, data.content))
}

/// A DER INTEGER's value as a positive `u32`.
fn count(content: &[u8]) -> Option<NonZeroU32> {
    content
        .iter()
        .try_fold(0u32, |a, b| a.checked_mul(256).map(|a| a + u32::from(*b)))
        .and_then(NonZeroU32::new)
}

fn scheme<'a>(params: &'a [u8], data: &'a [u8]) -> Result<Scheme<'a>, String> {
    let (params, _) = tlv(params).ok_or_else(malformed)?;
    let (kdf, rest) = tlv(params.content).ok_or_else(malformed)?;
    let (enc, _) = tlv(rest).ok_or_else(malformed)?;
    let (kdf_oid, kdf_params) = tlv(kdf.content).ok_or_else(malformed)?;
    if oid_string(kdf_oid.content).as_deref() != Some(PBKDF2) {
        return Err("only PBKDF2 is supported as the key derivation of an encrypted key".into());
    }
    let (kdf_params, _) = tlv(kdf_params).ok_or_else(malformed)?;
    let (salt, rest) = tlv(kdf_params.content).ok_or_else(malformed)?;
    let (iterations, mut rest) = tlv(rest).ok_or_else(malformed)?;
    let iterations = count(iterations.content).ok_or_else(malformed)?;
    let mut prf = ring::pbkdf2::PBKDF2_HMAC_SHA1;
    while let Some((field, after)) = tlv(rest) {
        rest = after;
        if field.tag == 0x30 {
            let (oid, _) = tlv(field.content).ok_or_else(malformed)?;
            prf = match oid_string(oid.content).as_deref() {
                Some("1.2.840.113549.2.7") => ring::pbkdf2::PBKDF2_HMAC_SHA1,
                Some("1.2.840.113549.2.9") => ring::pbkdf2::PBKDF2_HMAC_SHA256,
                Some("1.2.840.113549.2.10") => ring::pbkdf2::PBKDF2_HMAC_SHA384,
                Some("1.2.840.113549.2.11") => ring::pbkdf2::PBKDF2_HMAC_SHA512,
                other => {
                    return Err(format!(
                        "unsupported PBKDF2 function {}",
                        other.unwrap_or("?")
                    ))
                }
            };
        }
    }
    let (enc_oid, iv) = tlv(enc.content).ok_or_else(malformed)?;
    let cipher = match oid_string(enc_oid.content).as_deref() {
        Some("2.16.840.1.101.3.4.1.2") => "aes-128-cbc",
        Some("2.16.840.1.101.3.4.1.22") => "aes-192-cbc",
        Some("2.16.840.1.101.3.4.1.42") => "aes-256-cbc",
        other => {
            return Err(format!(
                "the private key is encrypted with {}, not AES-CBC; re-encrypt it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key-aes.pem`",
                other.unwrap_or("?")
            ))
        }
    };
    let (iv, _) = tlv(iv).ok_or_else(malformed)?;
    Ok(Scheme {
        prf,
        salt: salt.content,
        iterations,
        cipher,
        iv: iv.content,
        data,
    })
}

/// The plain PKCS#8 DER of an encrypted key; `Err` says why (a wrong password included).
pub fn decrypt(der: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let (alg, params, data) = parts(der)?;
    let plain = match alg.as_str() {
        PBES2 => decrypt_pbes2(scheme(params, data)?, password)?,
        PBE_SHA1_3DES => decrypt_sha1_3des(params, data, password)?,
        other => {
            return Err(format!(
                "the private key is encrypted with {other}, which is not supported; re-encrypt it with `openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES -in key.pem -out key-3des.pem` (readable by Kafka too)"
            ))
        }
    };
    // A wrong password passes the padding check now and then; the result is no key then.
    match tlv(&plain) {
        Some((seq, rest)) if seq.tag == 0x30 && rest.is_empty() => Ok(plain),
        _ => Err("cannot decrypt the private key: wrong password".into()),
    }
}

fn wrong<E>(_: E) -> String {
    "cannot decrypt the private key: wrong password".to_string()
}

/// PKCS#12's key derivation (RFC 7292, appendix B.2) with SHA-1: `n` bytes of material `id`
/// (1: key, 2: IV) from the password (as a NUL-terminated BMPString) and the salt.
fn pkcs12_kdf(password: &str, salt: &[u8], iterations: u32, id: u8, n: usize) -> Vec<u8> {
    const U: usize = 20;
    const V: usize = 64;
    let mut pass: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    pass.extend_from_slice(&[0, 0]);
    let fill = |x: &[u8]| -> Vec<u8> {
        if x.is_empty() {
            return Vec::new();
        }
        let len = V * x.len().div_ceil(V);
        x.iter().copied().cycle().take(len).collect()
    };
    let mut i: Vec<u8> = fill(salt);
    i.extend(fill(&pass));
    let d = [id; V];
    let mut out = Vec::with_capacity(n + U);
    while out.len() < n {
        let mut a = Sha1::new().chain_update(d).chain_update(&i).finalize();
        for _ in 1..iterations {
            a = Sha1::digest(a);
        }
        out.extend_from_slice(&a);
        // I_j = (I_j + B + 1) mod 2^(8V) for each V-byte block, B = A repeated to V bytes.
        let b: Vec<u8> = a.iter().copied().cycle().take(V).collect();
        for block in i.chunks_mut(V) {
            let mut carry = 1u16;
            for k in (0..V).rev() {
                let sum = u16::from(block[k]) + u16::from(b[k]) + carry;
                block[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn decrypt_sha1_3des(params: &[u8], data: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let (params, _) = tlv(params).ok_or_else(malformed)?;
    let (salt, rest) = tlv(params.content).ok_or_else(malformed)?;
    let (iterations, _) = tlv(rest).ok_or_else(malformed)?;
    let iterations = count(iterations.content).ok_or_else(malformed)?.get();
    let key = pkcs12_kdf(password, salt.content, iterations, 1, 24);
    let iv = pkcs12_kdf(password, salt.content, iterations, 2, 8);
    cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
        .map_err(|_| malformed())?
        .decrypt_padded_vec_mut::<Pkcs7>(data)
        .map_err(wrong)
}

fn decrypt_pbes2(s: Scheme<'_>, password: &str) -> Result<Vec<u8>, String> {
    let key_len = match s.cipher {
        "aes-128-cbc" => 16,
        "aes-192-cbc" => 24,
        _ => 32,
    };
    let mut key = vec![0u8; key_len];
    ring::pbkdf2::derive(s.prf, s.iterations, s.salt, password.as_bytes(), &mut key);
    let bad_iv = |_| "the encrypted private key's IV is malformed".to_string();
    Ok(match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, s.iv)
            .map_err(bad_iv)?
            .decrypt_padded_vec_mut::<Pkcs7>(s.data)
            .map_err(wrong)?,
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, s.iv)
            .map_err(bad_iv)?
            .decrypt_padded_vec_mut::<Pkcs7>(s.data)
            .map_err(wrong)?,
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, s.iv)
            .map_err(bad_iv)?
            .decrypt_padded_vec_mut::<Pkcs7>(s.data)
            .map_err(wrong)?,
    })
}
