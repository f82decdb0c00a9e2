//! Topic naming rules, as Kafka's `Topic.validate`.

/// Kafka's limit on topic name length.
pub const MAX_NAME_LEN: usize = 249;

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
