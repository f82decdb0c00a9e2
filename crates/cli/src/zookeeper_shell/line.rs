//! Splitting an interactive line into words, exactly as zkCli does.
//!
//! zkCli runs `\s*([^"']\S*|"[^"]*"|'[^']*')\s*` with `Matcher.find()` over the line and strips
//! one pair of matching outer quotes from each word. Its quirks are kept on purpose, because
//! scripts that pipe commands into the shell were written against them: a quoted word keeps
//! inner spaces (`create /a "x y"`), quotes inside a word stay (`a"b`), and a quote that is never
//! closed is silently dropped (`get "/a` reads `/a`). One-shot commands from the command line are
//! not re-split: the shell has already done that.

/// Java's `\s`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

fn is_quote(c: char) -> bool {
    c == '"' || c == '\''
}

/// Whether `line` holds nothing but Java `\s` blanks.
pub fn is_blank(line: &str) -> bool {
    line.chars().all(is_space)
}

/// Splits `line` into words; an empty result means there is no command on the line.
pub fn split(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        match match_at(&chars, start) {
            Some((word, end)) => {
                words.push(strip_quotes(word));
                start = end;
            }
            // `find()` retries one character further on.
            None => start += 1,
        }
    }
    words
}

/// One attempt of the pattern at `start`: the word and where the match ends.
fn match_at(chars: &[char], start: usize) -> Option<(String, usize)> {
    let spaces = chars[start..].iter().take_while(|c| is_space(**c)).count();
    // `\s*` is greedy but gives characters back when the group cannot match after it, so a
    // blank may end up as the first character of an unquoted word.
    for lead in (0..=spaces).rev() {
        let at = start + lead;
        let Some(&first) = chars.get(at) else {
            continue;
        };
        let end = if !is_quote(first) {
            at + 1
                + chars[at + 1..]
                    .iter()
                    .take_while(|c| !is_space(**c))
                    .count()
        } else {
            match chars[at + 1..].iter().position(|c| *c == first) {
                Some(close) => at + 1 + close + 1,
                None => continue,
            }
        };
        let word: String = chars[at..end].iter().collect();
        let trailing = chars[end..].iter().take_while(|c| is_space(**c)).count();
        return Some((word, end + trailing));
    }
    None
}

/// `^(['"])(.*)(\1)$`: one pair of equal outer quotes comes off.
fn strip_quotes(word: String) -> String {
    let mut chars = word.chars();
    match (chars.next(), chars.next_back()) {
        (Some(a), Some(b)) if a == b && is_quote(a) => chars.collect(),
        _ => word,
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    fn words(line: &str) -> Vec<String> {
        split(line)
    }

    #[test]
    fn plain_words_and_blanks() {
        assert_eq!(words("ls /"), ["ls", "/"]);
        assert_eq!(words("  get   /q   "), ["get", "/q"]);
        assert_eq!(words("set\t/a\tb"), ["set", "/a", "b"]);
        assert!(words("").is_empty());
        // As in Java, `[^"']` takes the last blank of a blank line (zkCli then reports the
        // command " " as unknown); the shell skips blank lines before splitting.
        assert_eq!(words("   \t "), [" "]);
        assert!(super::is_blank("   \t "));
        assert!(!super::is_blank(" \u{a0} "));
    }

    #[test]
    fn quotes_group_and_are_stripped() {
        assert_eq!(
            words("create /q 'hello world'"),
            ["create", "/q", "hello world"]
        );
        assert_eq!(words(r#"create /q2 "a b" "#), ["create", "/q2", "a b"]);
        assert_eq!(words(r#"set /a """#), ["set", "/a", ""]);
        assert_eq!(words(r#"set /a "it's""#), ["set", "/a", "it's"]);
    }

    #[test]
    fn inner_quotes_stay() {
        assert_eq!(words(r#"set /a a"b"#), ["set", "/a", r#"a"b"#]);
        assert_eq!(words(r#"get /q""#), ["get", r#"/q""#]);
    }

    #[test]
    fn an_unclosed_quote_is_dropped() {
        assert_eq!(words(r#"get "/q"#), ["get", "/q"]);
        assert_eq!(words(r#"create /q3 "ab"#), ["create", "/q3", "ab"]);
    }

    #[test]
    fn a_leading_blank_can_join_a_word_as_in_java() {
        // The regex backtracks `\s*` so that `[^"']` takes the blank before an unclosed quote.
        assert_eq!(words(r#"  "ls"#), [r#" "ls"#]);
    }
}
