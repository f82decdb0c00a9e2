//! Topic naming rules, as Kafka's `Topic.validate`.

/// Kafka's limit on topic name length.
pub const MAX_NAME_LEN: usize = 249;

/// Most partitions a topic may have. A topic's partition assignment is one znode, and coord
/// (like ZooKeeper) refuses znodes over `jute.maxbuffer` (1 MiB): at about 20 bytes of JSON per
/// partition this is where Kafka's own ZooKeeper mode stops too. Checked before anything is
/// built, so a request cannot make the broker build an assignment of billions of partitions.
pub const MAX_PARTITIONS: i32 = 50_000;

/// Checks a requested partition count.
pub fn valid_partition_count(partitions: i32) -> Result<(), String> {
    if partitions <= 0 {
        return Err(format!(
            "number of partitions must be larger than 0, got {partitions}"
        ));
    }
    if partitions > MAX_PARTITIONS {
        return Err(format!(
            "number of partitions {partitions} is larger than the {MAX_PARTITIONS} a topic can have"
        ));
    }
    Ok(())
}

pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("Topic name is illegal, it can't be longer than {MAX_NAME_LEN} characters, topic name: {name}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!("Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn kafka_topic_name_rules() {
        assert!(valid_name("web-logs.v1_2").is_ok());
        for bad in ["", ".", "..", "a b", "로그", &"x".repeat(250)] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }
}
