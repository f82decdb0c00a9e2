//! DescribeClientQuotas (v0–1) and AlterClientQuotas (v0–1): client and user quotas kept in
//! coord (see [`crate::cluster::client_quotas`]), validated as Kafka 4.1 validates them, and
//! [`QuotaError`]s turned into wire codes here, at the edge.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::quotas::entity::{self, Entity, QuotaError, QuotaKey, CLIENT_ID, IP, USER};
use crate::Broker;

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// The wire error for a refusal: the one place quota errors become codes.
pub fn wire_error(e: &QuotaError) -> ResponseError {
    match e {
        QuotaError::UnsupportedFilterType(_) | QuotaError::UnknownMatchType(_) => {
            ResponseError::UnsupportedVersion
        }
        QuotaError::Coord(_) => ResponseError::UnknownServerError,
        _ => ResponseError::InvalidRequest,
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// What a filter asks for: entity types with an exact name (`None`: the default) and entity
/// types with any name.
#[derive(Debug)]
struct Filter {
    exact: Vec<(&'static str, Option<String>)>,
    specified: Vec<&'static str>,
    strict: bool,
}

fn entity_type(t: &str) -> Result<&'static str, QuotaError> {
    match t {
        "" => Err(QuotaError::EmptyFilterType),
        USER => Ok(USER),
        CLIENT_ID => Ok(CLIENT_ID),
        IP => Ok(IP),
        other => Err(QuotaError::UnsupportedFilterType(other.to_string())),
    }
}

fn parse_filter(req: &DescribeClientQuotasRequest) -> Result<Filter, QuotaError> {
    let mut f = Filter {
        exact: Vec::new(),
        specified: Vec::new(),
        strict: req.strict,
    };
    for c in &req.components {
        let t = c.entity_type.as_str();
        if t.is_empty() {
            return Err(QuotaError::EmptyFilterType);
        }
        if f.exact.iter().any(|(x, _)| *x == t) || f.specified.contains(&t) {
            return Err(QuotaError::DuplicateFilterType(t.to_string()));
        }
        let t = entity_type(t)?;
        let name = c._match.as_ref().map(|m| m.to_string());
        match c.match_type {
            MATCH_EXACT => match name {
                None => return Err(QuotaError::ExactWithoutMatch),
                n => f.exact.push((t, n)),
            },
            MATCH_DEFAULT => match name {
                None => f.exact.push((t, None)),
                Some(_) => return Err(QuotaError::DefaultWithMatch),
            },
            MATCH_SPECIFIED => match name {
                None => f.specified.push(t),
                Some(_) => return Err(QuotaError::SpecifiedWithMatch),
            },
            other => return Err(QuotaError::UnknownMatchType(other)),
        }
    }
    let has = |t: &str| f.exact.iter().any(|(x, _)| *x == t) || f.specified.contains(&t);
    if has(IP) && (has(USER) || has(CLIENT_ID)) {
        return Err(QuotaError::IpFilterCombination);
    }
    Ok(f)
}

/// Kafka's `ClientQuotasImage.matches`.
fn matches(e: &Entity, f: &Filter) -> bool {
    let parts = e.components();
    if f.strict && parts.len() != f.exact.len() + f.specified.len() {
        return false;
    }
    let name_of = |t: &str| parts.iter().find(|(x, _)| *x == t).map(|(_, n)| *n);
    f.exact
        .iter()
        .all(|(t, want)| name_of(t).is_some_and(|n| n == want.as_deref()))
        && f.specified.iter().all(|t| name_of(t).is_some())
}

pub async fn describe(
    broker: &Broker,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut resp = DescribeClientQuotasResponse::default();
    resp.error_message = None;
    let result = match parse_filter(&req) {
        Ok(f) => broker
            .cluster
            .read_client_quotas()
            .await
            .map_err(|e| QuotaError::Coord(e.to_string()))
            .map(|t| (f, t)),
        Err(e) => Err(e),
    };
    match result {
        Err(e) => {
            resp.error_code = wire_error(&e).code();
            resp.error_message = Some(s(e.to_string()));
            resp.entries = None;
        }
        Ok((f, table)) => {
            let entries = table
                .entities
                .iter()
                .filter(|(e, _)| matches(e, &f))
                .map(|(e, quotas)| {
                    let mut entry = describe_client_quotas_response::EntryData::default();
                    entry.entity = e
                        .components()
                        .into_iter()
                        .map(|(t, n)| {
                            let mut d = describe_client_quotas_response::EntityData::default();
                            d.entity_type = s(t);
                            d.entity_name = n.map(s);
                            d
                        })
                        .collect();
                    entry.values = quotas
                        .iter()
                        .map(|(k, v)| {
                            let mut d = describe_client_quotas_response::ValueData::default();
                            d.key = s(k.name());
                            d.value = *v;
                            d
                        })
                        .collect();
                    entry
                })
                .collect();
            resp.entries = Some(entries);
        }
    }
    resp
}

/// One entry's changes: checked whole before anything is written.
fn parse_ops(
    ops: &[kafka_protocol::messages::alter_client_quotas_request::OpData],
) -> Result<Vec<(QuotaKey, Option<f64>)>, QuotaError> {
    let mut out: Vec<(QuotaKey, Option<f64>)> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for op in ops {
        let key = op.key.as_str();
        if seen.contains(&key) {
            return Err(QuotaError::DuplicateKey(key.to_string()));
        }
        seen.push(key);
        if op.remove {
            // Removing a key that is not there (or not a quota key) changes nothing, as in
            // Kafka.
            if let Some(k) = QuotaKey::parse(key) {
                out.push((k, None));
            }
        } else {
            out.push((entity::validate_value(key, op.value)?, Some(op.value)));
        }
    }
    Ok(out)
}

pub async fn alter(broker: &Broker, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let mut resp = AlterClientQuotasResponse::default();
    let mut seen: Vec<Entity> = Vec::new();
    for e in req.entries {
        let parsed = entity::parse_entity(e.entity.iter().map(|d| {
            (
                d.entity_type.as_str(),
                d.entity_name.as_ref().map(|n| n.as_str()),
            )
        }));
        let result = match parsed {
            Err(err) => Err(err),
            Ok(entity) if seen.contains(&entity) => Err(QuotaError::DuplicateEntity),
            Ok(entity) => {
                seen.push(entity.clone());
                match parse_ops(&e.ops) {
                    Err(err) => Err(err),
                    Ok(_) if req.validate_only => Ok(()),
                    Ok(ops) => broker
                        .cluster
                        .alter_client_quotas(&entity, &ops)
                        .await
                        .map(|_| ())
                        .map_err(|err| QuotaError::Coord(err.to_string())),
                }
            }
        };
        let mut out = alter_client_quotas_response::EntryData::default();
        out.error_message = None;
        if let Err(err) = &result {
            out.error_code = wire_error(err).code();
            out.error_message = Some(s(err.to_string()));
        }
        out.entity = e
            .entity
            .iter()
            .map(|d| {
                let mut x = alter_client_quotas_response::EntityData::default();
                x.entity_type = d.entity_type.clone();
                x.entity_name = d.entity_name.clone();
                x
            })
            .collect();
        resp.entries.push(out);
    }
    // Read-your-writes on this broker: the quotas in force follow at once (the watch brings
    // them to the other brokers).
    if !req.validate_only {
        match broker.cluster.read_client_quotas().await {
            Ok(t) => broker.quotas.set_table(t),
            Err(e) => tracing::warn!(error = %e, "client quotas not re-read after a change"),
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quotas::entity::Name;
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;

    fn component(t: &str, m: i8, name: Option<&str>) -> ComponentData {
        let mut c = ComponentData::default();
        c.entity_type = s(t);
        c.match_type = m;
        c._match = name.map(s);
        c
    }

    fn filter(components: Vec<ComponentData>, strict: bool) -> Result<Filter, QuotaError> {
        let mut r = DescribeClientQuotasRequest::default();
        r.components = components;
        r.strict = strict;
        parse_filter(&r)
    }

    #[test]
    fn filters_match_as_kafkas() {
        let noisy = Entity::client(Name::Named("noisy".into()));
        let default_client = Entity::client(Name::Default);
        let user_noisy = Entity::user_client(Name::Named("u".into()), Name::Named("noisy".into()));
        let f = filter(vec![component(CLIENT_ID, MATCH_SPECIFIED, None)], true).unwrap();
        assert!(matches(&noisy, &f) && matches(&default_client, &f) && !matches(&user_noisy, &f));
        let f = filter(vec![component(CLIENT_ID, MATCH_SPECIFIED, None)], false).unwrap();
        assert!(matches(&user_noisy, &f));
        let f = filter(vec![component(CLIENT_ID, MATCH_DEFAULT, None)], false).unwrap();
        assert!(!matches(&noisy, &f) && matches(&default_client, &f));
        let f = filter(
            vec![component(CLIENT_ID, MATCH_EXACT, Some("noisy"))],
            false,
        )
        .unwrap();
        assert!(matches(&noisy, &f) && !matches(&default_client, &f));
    }

    #[test]
    fn bad_filters_get_kafkas_errors() {
        let e = filter(vec![component("group", MATCH_SPECIFIED, None)], false).unwrap_err();
        assert_eq!(wire_error(&e), ResponseError::UnsupportedVersion);
        assert_eq!(e.to_string(), "Unsupported entity type group");
        let e = filter(
            vec![
                component(USER, MATCH_SPECIFIED, None),
                component(USER, MATCH_SPECIFIED, None),
            ],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Entity type user cannot appear more than once in the filter."
        );
    }
}
