//! DescribeUserScramCredentials (v0): this broker has no authentication yet, so no user has
//! SCRAM credentials. Answered as Kafka answers for users without any, because
//! `kafka-configs --describe --entity-type users` asks it beside the user quotas.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

pub fn describe(req: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    resp.error_message = None;
    let mut seen: Vec<StrBytes> = Vec::new();
    for u in req.users.unwrap_or_default() {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = u.name.clone();
        if seen.contains(&u.name) {
            r.error_code = ResponseError::DuplicateResource.code();
            r.error_message = Some(StrBytes::from_string(format!(
                "Cannot describe SCRAM credentials for the same user twice in a single request: {}",
                u.name.as_str()
            )));
        } else {
            r.error_code = ResponseError::ResourceNotFound.code();
            r.error_message = Some(StrBytes::from_string(format!(
                "Attempt to describe a user credential that does not exist: {}",
                u.name.as_str()
            )));
        }
        seen.push(u.name);
        resp.results.push(r);
    }
    resp
}
