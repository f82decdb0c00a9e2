//! Quota entities (a user, a client id, or both; each a name or `<default>`), the quota keys,
//! their validation with Kafka's messages, where an entity lives in coord, and Kafka's
//! precedence for which entity's quota applies to a request.

use std::collections::BTreeMap;

/// Kafka's name for the default entity in ZooKeeper paths.
pub const DEFAULT: &str = "<default>";

/// The entity types of DescribeClientQuotas / AlterClientQuotas.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The user every connection is until authentication exists (Kafka's unauthenticated
/// principal).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// One side of an entity: a given name or the default.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    Default,
    Named(String),
}

impl Name {
    /// The name as the wire carries it (`None` for the default).
    pub fn wire(&self) -> Option<&str> {
        match self {
            Name::Default => None,
            Name::Named(n) => Some(n),
        }
    }

    fn znode(&self) -> String {
        match self {
            Name::Default => DEFAULT.to_string(),
            Name::Named(n) => sanitize(n),
        }
    }

    fn from_znode(s: &str) -> Name {
        if s == DEFAULT {
            Name::Default
        } else {
            Name::Named(desanitize(s))
        }
    }
}

/// A quota entity: a user, a client id, or a user's client id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    pub user: Option<Name>,
    pub client: Option<Name>,
}

impl Entity {
    pub fn client(name: Name) -> Entity {
        Entity {
            user: None,
            client: Some(name),
        }
    }

    pub fn user(name: Name) -> Entity {
        Entity {
            user: Some(name),
            client: None,
        }
    }

    pub fn user_client(user: Name, client: Name) -> Entity {
        Entity {
            user: Some(user),
            client: Some(client),
        }
    }

    /// The znode under `/config` holding this entity's quotas (Kafka's ZooKeeper layout):
    /// `clients/<c>`, `users/<u>`, `users/<u>/clients/<c>`. Also the `entity_path` of its
    /// change notification.
    pub fn entity_path(&self) -> String {
        match (&self.user, &self.client) {
            (Some(u), Some(c)) => format!("users/{}/clients/{}", u.znode(), c.znode()),
            (Some(u), None) => format!("users/{}", u.znode()),
            (None, Some(c)) => format!("clients/{}", c.znode()),
            (None, None) => unreachable!("an entity names a user or a client id"),
        }
    }

    /// The entity whose znode is `/config/<entity_path>`.
    pub fn from_entity_path(path: &str) -> Option<Entity> {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["clients", c] => Some(Entity::client(Name::from_znode(c))),
            ["users", u] => Some(Entity::user(Name::from_znode(u))),
            ["users", u, "clients", c] => Some(Entity::user_client(
                Name::from_znode(u),
                Name::from_znode(c),
            )),
            _ => None,
        }
    }

    /// (entity type, name) pairs, user first, as DescribeClientQuotas answers them.
    pub fn components(&self) -> Vec<(&'static str, Option<&str>)> {
        let mut v = Vec::new();
        if let Some(u) = &self.user {
            v.push((USER, u.wire()));
        }
        if let Some(c) = &self.client {
            v.push((CLIENT_ID, c.wire()));
        }
        v
    }
}

/// Kafka's `Sanitizer.sanitize`: URL encoding with `%20` for spaces and `%2A` for `*`, so any
/// client id or principal is one znode name.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`sanitize`].
pub fn desanitize(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(Ok(v)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The quota keys a user or client-id entity takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKey {
    /// Bytes per second of Produce requests.
    ProducerByteRate,
    /// Bytes per second of Fetch responses.
    ConsumerByteRate,
    /// Percentage of one thread's time spent handling the client's requests.
    RequestPercentage,
    /// Partition mutations per second (accepted and kept; not enforced here).
    ControllerMutationRate,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 4] = [
        QuotaKey::ConsumerByteRate,
        QuotaKey::ControllerMutationRate,
        QuotaKey::ProducerByteRate,
        QuotaKey::RequestPercentage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
            QuotaKey::ControllerMutationRate => "controller_mutation_rate",
        }
    }

    pub fn parse(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kafka's type for the key: the byte rates are LONGs, the others DOUBLEs.
    fn integral(self) -> bool {
        matches!(
            self,
            QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate
        )
    }
}

/// Why a quota request is refused. The messages are Kafka 4.1's (its controller's
/// `ClientQuotaControlManager` and `ClientQuotasImage`), compared with a real broker.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    #[error("Invalid empty client quota entity")]
    EmptyEntity,
    #[error("Invalid empty client quota entity, duplicate entity entry {0}")]
    DuplicateEntityType(String),
    #[error("Unhandled client quota entity type: {0}")]
    UnknownEntityType(String),
    #[error("Empty {0} not supported")]
    EmptyName(String),
    #[error("ip entities (connection_creation_rate) are not supported by this broker")]
    IpEntity,
    #[error("Invalid configuration key {0}")]
    UnknownKey(String),
    #[error("Quota {0} must be greater than 0")]
    NotPositive(&'static str),
    #[error("{0} cannot be a fractional value.")]
    Fractional(&'static str),
    #[error("Proposed value for {0} is too large for a LONG.")]
    TooLarge(&'static str),
    #[error("Duplicate quota key {0} not updating quota for this entity")]
    DuplicateKey(String),
    #[error("Ignoring duplicate entity")]
    DuplicateEntity,
    #[error("Invalid empty entity type.")]
    EmptyFilterType,
    #[error("Entity type {0} cannot appear more than once in the filter.")]
    DuplicateFilterType(String),
    /// Answered with UNSUPPORTED_VERSION, as Kafka does.
    #[error("Unsupported entity type {0}")]
    UnsupportedFilterType(String),
    #[error("Request specified MATCH_TYPE_EXACT, but set match string to null.")]
    ExactWithoutMatch,
    #[error("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")]
    DefaultWithMatch,
    #[error("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")]
    SpecifiedWithMatch,
    /// Answered with UNSUPPORTED_VERSION, as Kafka does.
    #[error("Unknown match type {0}")]
    UnknownMatchType(i8),
    #[error("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.")]
    IpFilterCombination,
    #[error("coordinator: {0}")]
    Coord(String),
}

/// An entity from the wire's (type, name) pairs, checked as Kafka checks it.
pub fn parse_entity<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Entity, QuotaError> {
    let mut user = None;
    let mut client = None;
    let mut any = false;
    for (kind, name) in parts {
        any = true;
        let slot = match kind {
            USER => &mut user,
            CLIENT_ID => &mut client,
            IP => return Err(QuotaError::IpEntity),
            other => return Err(QuotaError::UnknownEntityType(other.to_string())),
        };
        if slot.is_some() {
            return Err(QuotaError::DuplicateEntityType(kind.to_string()));
        }
        *slot = Some(match name {
            None => Name::Default,
            Some("") => return Err(QuotaError::EmptyName(kind.to_string())),
            Some(n) => Name::Named(n.to_string()),
        });
    }
    if !any {
        return Err(QuotaError::EmptyEntity);
    }
    Ok(Entity { user, client })
}

/// A quota key and value as AlterClientQuotas may set them.
pub fn validate_value(key: &str, value: f64) -> Result<QuotaKey, QuotaError> {
    let k = QuotaKey::parse(key).ok_or_else(|| QuotaError::UnknownKey(key.to_string()))?;
    if value.is_nan() || value <= 0.0 {
        return Err(QuotaError::NotPositive(k.name()));
    }
    if k.integral() {
        if value > i64::MAX as f64 {
            return Err(QuotaError::TooLarge(k.name()));
        }
        if value.fract() != 0.0 {
            return Err(QuotaError::Fractional(k.name()));
        }
    }
    Ok(k)
}

/// The quotas of one entity.
pub type Quotas = BTreeMap<QuotaKey, f64>;

/// Every entity's quotas, as coord holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuotaTable {
    pub entities: BTreeMap<Entity, Quotas>,
}

/// Which requests share a measured rate: Kafka's metric tags (user, client id), either of
/// which may be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorTags {
    pub user: String,
    pub client: String,
}

impl QuotaTable {
    fn get(&self, kind: QuotaKey, e: &Entity) -> Option<f64> {
        self.entities.get(e).and_then(|q| q.get(&kind)).copied()
    }

    /// The quota of `kind` applying to `user`'s client `client`, and the rate it is measured
    /// on, by Kafka's precedence (its `DefaultQuotaCallback`):
    ///
    /// ```text
    /// 1. /config/users/<user>/clients/<client-id>     5. /config/users/<default>/clients/<default>
    /// 2. /config/users/<user>/clients/<default>       6. /config/users/<default>
    /// 3. /config/users/<user>                         7. /config/clients/<client-id>
    /// 4. /config/users/<default>/clients/<client-id>  8. /config/clients/<default>
    /// ```
    ///
    /// The first level holding a quota of `kind` decides the tags: a user-level quota is one
    /// rate shared by all the user's clients, a client-id quota one per client id.
    pub fn resolve(&self, kind: QuotaKey, user: &str, client: &str) -> Option<(SensorTags, f64)> {
        let u = Name::Named(user.to_string());
        let c = Name::Named(client.to_string());
        let has = |e: Entity| self.get(kind, &e).is_some();
        let (tu, tc) = if has(Entity::user_client(u.clone(), c.clone()))
            || has(Entity::user_client(u.clone(), Name::Default))
        {
            (user, client)
        } else if has(Entity::user(u.clone())) {
            (user, "")
        } else if has(Entity::user_client(Name::Default, c.clone()))
            || has(Entity::user_client(Name::Default, Name::Default))
        {
            (user, client)
        } else if has(Entity::user(Name::Default)) {
            (user, "")
        } else {
            ("", client)
        };
        let limit = match (tu.is_empty(), tc.is_empty()) {
            (false, false) => [
                Entity::user_client(u.clone(), c.clone()),
                Entity::user_client(u, Name::Default),
                Entity::user_client(Name::Default, c),
                Entity::user_client(Name::Default, Name::Default),
            ]
            .iter()
            .find_map(|e| self.get(kind, e)),
            (false, true) => [Entity::user(u), Entity::user(Name::Default)]
                .iter()
                .find_map(|e| self.get(kind, e)),
            (true, false) => [Entity::client(c), Entity::client(Name::Default)]
                .iter()
                .find_map(|e| self.get(kind, e)),
            (true, true) => None,
        }?;
        Some((
            SensorTags {
                user: tu.to_string(),
                client: tc.to_string(),
            },
            limit,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(Entity, f64)]) -> QuotaTable {
        let mut t = QuotaTable::default();
        for (e, v) in entries {
            t.entities
                .entry(e.clone())
                .or_default()
                .insert(QuotaKey::ProducerByteRate, *v);
        }
        t
    }

    fn named(s: &str) -> Name {
        Name::Named(s.into())
    }

    #[test]
    fn precedence_is_kafkas() {
        let p = QuotaKey::ProducerByteRate;
        let mut entries = vec![
            (Entity::user_client(named("u"), named("c")), 1.0),
            (Entity::user_client(named("u"), Name::Default), 2.0),
            (Entity::user(named("u")), 3.0),
            (Entity::user_client(Name::Default, named("c")), 4.0),
            (Entity::user_client(Name::Default, Name::Default), 5.0),
            (Entity::user(Name::Default), 6.0),
            (Entity::client(named("c")), 7.0),
            (Entity::client(Name::Default), 8.0),
        ];
        // Each level wins over the ones after it.
        for expected in 1..=8 {
            let got = table(&entries).resolve(p, "u", "c").map(|(_, v)| v);
            assert_eq!(got, Some(expected as f64));
            entries.remove(0);
        }
        assert_eq!(table(&entries).resolve(p, "u", "c"), None);
    }

    #[test]
    fn user_quotas_are_shared_by_the_users_clients() {
        let t = table(&[(Entity::user(named("u")), 100.0)]);
        let (tags, _) = t.resolve(QuotaKey::ProducerByteRate, "u", "a").unwrap();
        assert_eq!((tags.user.as_str(), tags.client.as_str()), ("u", ""));
        let t = table(&[(Entity::client(named("a")), 100.0)]);
        let (tags, _) = t.resolve(QuotaKey::ProducerByteRate, "u", "a").unwrap();
        assert_eq!((tags.user.as_str(), tags.client.as_str()), ("", "a"));
        assert!(t.resolve(QuotaKey::ConsumerByteRate, "u", "a").is_none());
        assert!(t.resolve(QuotaKey::ProducerByteRate, "u", "b").is_none());
    }

    #[test]
    fn paths_round_trip_with_kafkas_sanitizing() {
        let e = Entity::user_client(named("CN=a b*"), Name::Default);
        assert_eq!(e.entity_path(), "users/CN%3Da%20b%2A/clients/<default>");
        assert_eq!(Entity::from_entity_path(&e.entity_path()), Some(e));
        assert_eq!(
            Entity::from_entity_path("clients/noisy"),
            Some(Entity::client(named("noisy")))
        );
    }

    #[test]
    fn values_are_checked_as_kafka_does() {
        assert_eq!(
            validate_value("bogus", 1.0),
            Err(QuotaError::UnknownKey("bogus".into()))
        );
        assert_eq!(
            validate_value("producer_byte_rate", -1.0)
                .unwrap_err()
                .to_string(),
            "Quota producer_byte_rate must be greater than 0"
        );
        assert_eq!(
            validate_value("producer_byte_rate", 1.5)
                .unwrap_err()
                .to_string(),
            "producer_byte_rate cannot be a fractional value."
        );
        assert!(validate_value("request_percentage", 0.5).is_ok());
        assert_eq!(
            parse_entity([(CLIENT_ID, Some(""))])
                .unwrap_err()
                .to_string(),
            "Empty client-id not supported"
        );
        assert_eq!(parse_entity([]), Err(QuotaError::EmptyEntity));
    }
}
