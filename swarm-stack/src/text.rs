//! The small languages inside a compose file: `${VAR}` references, Go
//! durations, byte sizes, and command lines.

use std::time::Duration;

/// The length of the variable name at the start of `s` (0 if none: a
/// name starts with a letter or `_`).
fn name_len(s: &str) -> usize {
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return 0;
    }
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Every variable that `value` names, as compose reads references
/// (`$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?message}`, `${NAME?message}`, `${NAME:+alt}`, `${NAME+alt}`,
/// with references nested in a default), whether or not compose would
/// read it; `$$` is a dollar sign.
#[must_use]
pub fn variable_names(value: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, None, &mut found);
    found
}

/// The variables that `value` reads while unset and without a default,
/// which compose replaces with nothing and warns of: only the branches
/// compose takes count (`${A:-$B}` reads `B` only when `A` is unset or
/// empty, `${A:+$B}` only when it is set).
#[must_use]
pub fn unset_reads(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, Some(env), &mut found);
    found
}

/// Where variables' values come from.
type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Finds the references of `value`: with `env`, the unset ones compose
/// reads (following the branches it takes); without, every one.
fn walk(value: &str, env: Option<&Env<'_>>, found: &mut Vec<String>) {
    let lookup = |name: &str| env.map(|e| e(name));
    // Without `env`, every name; with it, those unset.
    let note = |name: &str, found: &mut Vec<String>| {
        if !name.is_empty() && lookup(name).is_none_or(|v| v.is_none()) {
            found.push(name.to_owned());
        }
    };
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            rest = r;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            let len = name_len(after);
            note(&after[..len], found);
            rest = &after[len..];
            continue;
        };
        let len = name_len(body);
        let name = &body[..len];
        let tail = &body[len..];
        if let Some(r) = tail.strip_prefix('}') {
            note(name, found);
            rest = r;
            continue;
        }
        // `${NAME<op>WORD}`: WORD runs to the brace that closes this one.
        if env.is_none() {
            note(name, found);
        }
        let Some(close) = closing_brace(tail) else {
            return;
        };
        let (op, word) = split_operator(&tail[..close]);
        let read = match lookup(name) {
            None => true,
            Some(value) => {
                let set = value.is_some();
                let nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                match op {
                    ":-" => !nonempty,
                    "-" => !set,
                    ":+" => nonempty,
                    "+" => set,
                    // A message, read only to fail with: nothing to warn of.
                    _ => false,
                }
            }
        };
        if read {
            walk(word, env, found);
        }
        rest = &tail[close + 1..];
    }
}

/// Where the `}` that closes a `${` is in `s` (which follows its name),
/// counting the `${...}` nested in it.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `:-default` as (`:-`, `default`); an unknown operator is ("", s).
fn split_operator(s: &str) -> (&str, &str) {
    for op in [":-", ":+", ":?", "-", "+", "?"] {
        if let Some(word) = s.strip_prefix(op) {
            return (op, word);
        }
    }
    ("", s)
}

/// The warning compose gives for an unset variable without a default.
#[must_use]
pub fn unset_warning(name: &str) -> String {
    format!("The {name} variable is not set. Defaulting to a blank string.")
}

/// A Go duration: `10s`, `1m30s`, `500ms`, `1.5h`; a bare `0` is zero.
///
/// # Errors
/// Anything else, with the expected form.
pub fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: write e.g. 10s, 1m30s or 500ms");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        let unit_len = rest[n..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - n);
        let seconds = match &rest[n..n + unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = &rest[n + unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A size in bytes as compose writes it: `512M`, `1g`, `100kb`, `2048`
/// (units of 1024).
///
/// # Errors
/// A size that is not a number with one of b, k, m, g (optionally with b).
pub fn bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: write e.g. 512M, 1G or 100k");
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let value: f64 = n.parse().map_err(|_| bad())?;
    let scale: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((value * scale) as u64)
}

/// Splits a command line as a POSIX shell would split words: quotes
/// (single and double) and backslashes; no expansion.
///
/// # Errors
/// An unclosed quote.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in {s:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_unset_reads_follow_the_branch_taken() {
        assert_eq!(
            variable_names("a:$TAG b:${TAG} c:${NOPE:-x} f:$$TAG h:$1 i:${A:-${B}} j:${C?m $D}"),
            ["TAG", "TAG", "NOPE", "A", "B", "C", "D"]
        );
        assert!(variable_names("no dollars, or one: $").is_empty());
        let env = |name: &str| match name {
            "SET" => Some("x".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let reads = |v: &str| unset_reads(v, &env);
        assert_eq!(reads("$GONE ${GONE2} $SET $$GONE3"), ["GONE", "GONE2"]);
        // Defaults are read only when taken.
        assert!(reads("${SET:-$B}").is_empty());
        assert_eq!(reads("${EMPTY:-$B}"), ["B"]);
        assert!(reads("${EMPTY-$B}").is_empty());
        assert_eq!(reads("${UNSET:-${B:-$C}}"), ["C"]);
        // Alternatives only when set; messages never.
        assert!(reads("${UNSET:+$B}").is_empty());
        assert_eq!(reads("${SET:+$B} after $D"), ["B", "D"]);
        assert!(reads("${SET?msg $D}").is_empty());
    }

    #[test]
    fn durations_sizes_and_words() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(duration("10").unwrap_err().contains("write e.g. 10s"));
        assert!(duration("99999999999999999999999h").is_err());
        assert_eq!(bytes("512M").unwrap(), 512 << 20);
        assert_eq!(bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(bytes("2048").unwrap(), 2048);
        assert!(bytes("1 parsec").is_err());
        assert_eq!(
            shell_words(r#"sh -c 'echo "hi there"' a\ b "x\"y""#).unwrap(),
            ["sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
        );
        assert!(shell_words("echo 'open").is_err());
    }
}
