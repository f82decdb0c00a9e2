//! Request and response frames, without I/O.
//!
//! A request frame is a 4-byte big-endian size, then `size` bytes: the request header (API key,
//! API version, correlation id, client id, and tagged fields from the flexible header v2 on) and
//! the body. The first eight bytes after the size are the same in every header version, so a
//! frame's API, version and correlation id are known before anything is decoded; that is what a
//! server needs to refuse an unsupported version with an answer the client understands.

use std::ops::RangeInclusive;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Bytes of the fixed request prefix after the size: API key, version, correlation id.
pub const REQUEST_PREFIX: usize = 8;

/// Why a request frame was refused. Each names what was wrong; a server closes the connection
/// (except for [`RequestError::UnsupportedVersion`] of ApiVersions, which Kafka answers).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request size {0} is invalid (a request is at least {REQUEST_PREFIX} bytes)")]
    BadSize(i32),
    #[error("request of {0} bytes exceeds socket.request.max.bytes ({1})")]
    TooLarge(i32, i32),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{0:?} is not supported by this broker")]
    UnsupportedApi(ApiKey),
    #[error("{key:?} v{version} is not supported (supported: v{}..=v{})", served.start(), served.end())]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        served: RangeInclusive<i16>,
    },
    #[error("malformed {key:?} v{version} request: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Checks a frame's size prefix against `max` (`socket.request.max.bytes`) before the caller
/// reads or allocates the frame; returns the size to read.
pub fn check_size(size: i32, max: i32) -> Result<usize, RequestError> {
    if size < REQUEST_PREFIX as i32 {
        return Err(RequestError::BadSize(size));
    }
    if size > max {
        return Err(RequestError::TooLarge(size, max));
    }
    Ok(size as usize)
}

/// The API key, version and correlation id at the start of a request frame (after the size).
pub fn prefix(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let p: &[u8; REQUEST_PREFIX] = frame.get(..REQUEST_PREFIX)?.try_into().ok()?;
    Some((
        i16::from_be_bytes([p[0], p[1]]),
        i16::from_be_bytes([p[2], p[3]]),
        i32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    ))
}

/// Decodes one request frame (the bytes after the size prefix). `served` gives the version
/// range served for an API, `None` if it is not served at all; nothing past the fixed prefix is
/// decoded for an API or version that is not served.
pub fn decode_request(
    frame: Bytes,
    served: impl Fn(ApiKey) -> Option<RangeInclusive<i16>>,
) -> Result<Request, RequestError> {
    let len = frame.len();
    let (api_key, version, correlation_id) =
        prefix(&frame).ok_or(RequestError::BadSize(len.try_into().unwrap_or(i32::MAX)))?;
    let key = ApiKey::try_from(api_key).map_err(|()| RequestError::UnknownApi(api_key))?;
    let range = served(key).ok_or(RequestError::UnsupportedApi(key))?;
    if !range.contains(&version) {
        return Err(RequestError::UnsupportedVersion {
            key,
            version,
            correlation_id,
            served: range,
        });
    }
    // kafka-protocol's errors carry context; `{:#}` keeps the whole chain.
    let malformed = |what: &str, e: &dyn std::fmt::Display| RequestError::Malformed {
        key,
        version,
        reason: format!("{what}: {e:#}"),
    };
    let mut bytes = frame;
    let header = RequestHeader::decode(&mut bytes, key.request_header_version(version))
        .map_err(|e| malformed("header", &e))?;
    let body = RequestKind::decode(key, &mut bytes, version).map_err(|e| malformed("body", &e))?;
    Ok(Request {
        key,
        version,
        header,
        body,
    })
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {key:?} v{version}: {reason}")]
pub struct EncodeError {
    pub key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Appends one response frame (size, response header, body) to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    resp: &ResponseKind,
) -> Result<(), EncodeError> {
    let failed = |e: &dyn std::fmt::Display| EncodeError {
        key,
        version,
        reason: format!("{e:#}"),
    };
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(out, key.response_header_version(version))
        .map_err(|e| failed(&e))?;
    resp.encode(out, version).map_err(|e| failed(&e))?;
    let len = i32::try_from(out.len() - start - 4).map_err(|e| failed(&e))?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// One request as a complete frame (size prefix, header, body).
pub fn encode_request<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    req: &R,
) -> Result<Bytes, EncodeError> {
    framed_request(key, version, correlation_id, client_id, |buf| {
        req.encode(buf, version)
    })
}

/// [`encode_request`] for a request held as a [`RequestKind`].
pub fn encode_request_kind(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    req: &RequestKind,
) -> Result<Bytes, EncodeError> {
    framed_request(key, version, correlation_id, client_id, |buf| {
        req.encode(buf, version)
    })
}

fn framed_request<E: std::fmt::Display>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<Bytes, EncodeError> {
    let failed = |e: &dyn std::fmt::Display| EncodeError {
        key,
        version,
        reason: format!("{e:#}"),
    };
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_string(client_id.to_string()));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| failed(&e))?;
    body(&mut buf).map_err(|e| failed(&e))?;
    let size = i32::try_from(buf.len() - 4).map_err(|e| failed(&e))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    fn served(key: ApiKey) -> Option<RangeInclusive<i16>> {
        match key {
            ApiKey::Metadata => Some(0..=12),
            ApiKey::Fetch => Some(4..=17),
            ApiKey::Produce => Some(3..=11),
            _ => None,
        }
    }

    fn body(frame: &Bytes) -> Bytes {
        frame.slice(4..)
    }

    #[test]
    fn a_request_round_trips() {
        let f = encode_request(ApiKey::Metadata, 9, 7, "t", &MetadataRequest::default()).unwrap();
        let r = decode_request(body(&f), served).unwrap();
        assert_eq!(
            (r.key, r.version, r.header.correlation_id),
            (ApiKey::Metadata, 9, 7)
        );
        assert!(matches!(r.body, RequestKind::Metadata(_)));
    }

    #[test]
    fn sizes_are_checked_before_reading() {
        assert_eq!(check_size(7, 100), Err(RequestError::BadSize(7)));
        assert_eq!(check_size(-1, 100), Err(RequestError::BadSize(-1)));
        assert_eq!(check_size(101, 100), Err(RequestError::TooLarge(101, 100)));
        assert_eq!(check_size(100, 100), Ok(100));
    }

    #[test]
    fn unserved_apis_and_versions_are_refused_before_decoding() {
        let f = encode_request(ApiKey::Fetch, 3, 9, "t", &FetchRequest::default()).unwrap();
        match decode_request(body(&f), served) {
            Err(RequestError::UnsupportedVersion {
                key: ApiKey::Fetch,
                version: 3,
                correlation_id: 9,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let mut raw = body(&f).to_vec();
        raw[..2].copy_from_slice(&999i16.to_be_bytes());
        assert_eq!(
            decode_request(Bytes::from(raw), served).unwrap_err(),
            RequestError::UnknownApi(999)
        );
    }

    /// The defect that once killed the broker: a Produce v3 whose topic array claims 0x7FFFFFF0
    /// entries asked for 171 GB before decoding one. It is now a malformed request.
    #[test]
    fn a_huge_array_count_is_malformed_not_allocated() {
        let f = encode_request(ApiKey::Produce, 3, 1, "t", &ProduceRequest::default()).unwrap();
        let mut raw = body(&f).to_vec();
        // Produce v3 body: transactional id (i16 -1), acks (i16), timeout (i32), topic count.
        let n = raw.len();
        raw[n - 4..].copy_from_slice(&0x7FFF_FFF0i32.to_be_bytes());
        match decode_request(Bytes::from(raw), served) {
            Err(RequestError::Malformed { key, reason, .. }) => {
                assert_eq!(key, ApiKey::Produce);
                assert!(reason.contains("2147483632"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The other one: a Fetch v4 with a valid header and random bytes as its body.
    #[test]
    fn random_fetch_bodies_are_malformed_not_fatal() {
        let f = encode_request(ApiKey::Fetch, 4, 1, "t", &FetchRequest::default()).unwrap();
        let header_len = body(&f).len() - FetchRequest::default().compute_size(4).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut raw = body(&f)[..header_len].to_vec();
            let n = (state % 400) as usize;
            for _ in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                raw.push(state as u8);
            }
            // Either it decodes (random bytes can be a valid request) or it is malformed.
            let _ = decode_request(Bytes::from(raw), served);
        }
    }
}
