//! ApiVersions: which APIs and versions this broker serves, straight from [`super::SUPPORTED`].
//!
//! The answer carries no feature lists: librdkafka 2.0 (Debian's kcat, rsyslog-kafka) fails on
//! some newer tagged fields of the v3 answer, so only what clients need is sent.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::SUPPORTED;

pub fn response(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = SUPPORTED
        .iter()
        .map(|s| {
            let mut v = ApiVersion::default();
            v.api_key = s.key as i16;
            v.min_version = s.min;
            v.max_version = s.max;
            v
        })
        .collect();
    r
}
