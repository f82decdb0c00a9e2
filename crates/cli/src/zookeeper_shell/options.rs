//! Per-command option parsing with the rules of Apache commons-cli's `DefaultParser`, which every
//! zkCli command uses.
//!
//! What matters to users is reproduced: options may stand anywhere among the words
//! (`create /a -e`), flags combine (`-es`), a value may be glued on (`-v5`, `-v=5`) or follow as
//! the next word, where a negative number counts as a value (`set -v -1 ...`) but a word that
//! looks like one of the command's options does not; `--` ends the options; any other word
//! starting with `-` is an error, so `set /a -1` is rejected exactly as zkCli rejects it. The
//! command name is the first positional word, as in zkCli.

use std::fmt;

/// One option of a command: its letter and whether it takes a value.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    pub name: char,
    pub takes_value: bool,
}

/// A flag (`-s`).
pub const fn flag(name: char) -> Opt {
    Opt {
        name,
        takes_value: false,
    }
}

/// An option with a value (`-v 3`).
pub const fn valued(name: char) -> Opt {
    Opt {
        name,
        takes_value: true,
    }
}

/// Why the words do not parse; the text is commons-cli's exception message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError {
    Unrecognized(String),
    MissingArgument(char),
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unrecognized(word) => write!(f, "Unrecognized option: {word}"),
            OptionError::MissingArgument(name) => write!(f, "Missing argument for option: {name}"),
        }
    }
}

/// Parsed words: options seen and positional arguments (the command name first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    options: Vec<(char, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, name: char) -> bool {
        self.options.iter().any(|(n, _)| *n == name)
    }

    /// The value of the first occurrence of `name`, as commons-cli's `getOptionValue`.
    pub fn value(&self, name: char) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Parses `words` (command name included) against the command's `opts`.
pub fn parse(opts: &[Opt], words: &[String]) -> Result<Parsed, OptionError> {
    let find = |c: char| opts.iter().find(|o| o.name == c).copied();
    // A word commons-cli treats as an option: `-` then one of this command's letters.
    let is_option = |word: &str| {
        let Some(rest) = word.strip_prefix('-') else {
            return false;
        };
        let name = rest.split('=').next().unwrap_or("");
        name.chars().next().is_some_and(|c| find(c).is_some())
    };
    let is_negative_number = |word: &str| word.starts_with('-') && word.parse::<f64>().is_ok();

    let mut parsed = Parsed::default();
    // The option waiting for its value, and where its entry sits in `parsed.options`.
    let mut pending: Option<(char, usize)> = None;
    let mut only_args = false;
    for word in words {
        if only_args {
            parsed.args.push(word.clone());
            continue;
        }
        if word == "--" {
            only_args = true;
            continue;
        }
        if let Some((_, slot)) = pending {
            if !is_option(word) || is_negative_number(word) {
                parsed.options[slot].1 = Some(word.clone());
                pending = None;
                continue;
            }
        }
        let Some(body) = word.strip_prefix('-').filter(|b| !b.is_empty()) else {
            parsed.args.push(word.clone());
            continue;
        };
        if body.starts_with('-') {
            // No command has long options.
            return Err(OptionError::Unrecognized(word.clone()));
        }
        if let Some((name, value)) = body.split_once('=') {
            // `-v=5` works for a single valued option only.
            let mut chars = name.chars();
            let single = match (chars.next(), chars.next()) {
                (Some(c), None) => find(c).filter(|o| o.takes_value),
                _ => None,
            };
            let Some(opt) = single else {
                return Err(OptionError::Unrecognized(word.clone()));
            };
            if let Some((p, _)) = pending {
                return Err(OptionError::MissingArgument(p));
            }
            parsed.options.push((opt.name, Some(value.to_string())));
            continue;
        }
        for (i, c) in body.char_indices() {
            let Some(opt) = find(c) else {
                return Err(OptionError::Unrecognized(word.clone()));
            };
            if let Some((p, _)) = pending {
                return Err(OptionError::MissingArgument(p));
            }
            if !opt.takes_value {
                parsed.options.push((c, None));
                continue;
            }
            let rest = &body[i + c.len_utf8()..];
            if rest.is_empty() {
                parsed.options.push((c, None));
                pending = Some((c, parsed.options.len() - 1));
            } else {
                parsed.options.push((c, Some(rest.to_string())));
            }
            break;
        }
    }
    match pending {
        Some((p, _)) => Err(OptionError::MissingArgument(p)),
        None => Ok(parsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: [Opt; 2] = [flag('s'), valued('v')];
    const CREATE: [Opt; 4] = [flag('e'), flag('s'), flag('c'), valued('t')];

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    fn ok(opts: &[Opt], line: &str) -> Parsed {
        parse(opts, &words(line)).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn err(opts: &[Opt], line: &str) -> String {
        parse(opts, &words(line)).unwrap_err().to_string()
    }

    #[test]
    fn flags_values_and_positionals() {
        let p = ok(&SET, "set -s -v 3 /a data");
        assert!(p.has('s'));
        assert_eq!(p.value('v'), Some("3"));
        assert_eq!(p.args, ["set", "/a", "data"]);
    }

    #[test]
    fn options_may_follow_positionals() {
        let p = ok(&CREATE, "create /x -e");
        assert!(p.has('e'));
        assert_eq!(p.args, ["create", "/x"]);
    }

    #[test]
    fn combined_and_glued_forms() {
        let p = ok(&CREATE, "create -es /x");
        assert!(p.has('e') && p.has('s') && !p.has('c'));
        assert_eq!(ok(&SET, "set -v5 /a b").value('v'), Some("5"));
        assert_eq!(ok(&SET, "set -sv5 /a b").value('v'), Some("5"));
        assert_eq!(ok(&SET, "set -v=7 /a b").value('v'), Some("7"));
        assert_eq!(ok(&CREATE, "create -t100 /a").value('t'), Some("100"));
    }

    #[test]
    fn negative_numbers_are_values_but_not_arguments() {
        assert_eq!(ok(&SET, "set -v -1 /a b").value('v'), Some("-1"));
        assert_eq!(err(&SET, "set /a -1"), "Unrecognized option: -1");
        assert_eq!(err(&CREATE, "create /n -1.5"), "Unrecognized option: -1.5");
    }

    #[test]
    fn a_value_may_look_like_a_path_or_an_unknown_option() {
        let p = ok(&SET, "set -v /n z");
        assert_eq!(p.value('v'), Some("/n"));
        assert_eq!(p.args, ["set", "z"]);
        assert_eq!(ok(&SET, "set -v -x /a b").value('v'), Some("-x"));
    }

    #[test]
    fn missing_values() {
        assert_eq!(err(&SET, "set /n z -v"), "Missing argument for option: v");
        assert_eq!(
            err(&SET, "set -v -s /n z"),
            "Missing argument for option: v"
        );
        assert_eq!(
            err(&SET, "set -v -- /n z"),
            "Missing argument for option: v"
        );
    }

    #[test]
    fn unknown_options() {
        assert_eq!(err(&SET, "ls -x /"), "Unrecognized option: -x");
        assert_eq!(err(&CREATE, "create -ex /a"), "Unrecognized option: -ex");
        assert_eq!(
            err(&SET, "set --version 1"),
            "Unrecognized option: --version"
        );
        assert_eq!(err(&SET, "set -s=1 /a b"), "Unrecognized option: -s=1");
    }

    #[test]
    fn double_dash_ends_options_and_a_lone_dash_is_an_argument() {
        assert_eq!(
            ok(&CREATE, "create -- -e /dd").args,
            ["create", "-e", "/dd"]
        );
        assert_eq!(ok(&SET, "set /a -").args, ["set", "/a", "-"]);
    }

    #[test]
    fn first_value_wins() {
        assert_eq!(ok(&SET, "set -v 1 -v 2 /a b").value('v'), Some("1"));
    }
}
