//! The small languages inside a compose file: `${VAR}` interpolation, Go
//! durations, byte sizes, and command lines.

use std::time::Duration;

/// Replaces `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?message}` and `${NAME?message}` with values from `env`, and
/// `$$` with `$`, as compose does. An unset variable without a default
/// becomes empty, with a warning in `warnings`.
///
/// # Errors
/// An unclosed `${`, or a `?` variable that is unset (or empty, with `:?`).
pub fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r.find('}').ok_or_else(|| {
                let line = text[..text.len() - rest.len() + at].lines().count().max(1);
                format!("line {line}: `${{` is not closed by `}}`: write ${{NAME}}, or $$ for a dollar sign")
            })?;
            out.push_str(&substitute(&r[..end], env, warnings)?);
            rest = &r[end + 1..];
        } else {
            let len = if after.starts_with(|c: char| c.is_ascii_digit()) {
                0
            } else {
                after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len())
            };
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..len], env, warnings));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(name: &str, env: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> String {
    env(name).unwrap_or_else(|| {
        let w = format!("The {name} variable is not set. Defaulting to a blank string.");
        if !warnings.contains(&w) {
            warnings.push(w);
        }
        String::new()
    })
}

fn substitute(
    expr: &str,
    env: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let split = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (name, op) = expr.split_at(split);
    if name.is_empty() {
        return Err(format!(
            "${{{expr}}} names no variable: write ${{NAME}}, ${{NAME:-default}} or ${{NAME:?message}}"
        ));
    }
    let value = env(name);
    let empty_counts = op.starts_with(':');
    let unset = match &value {
        None => true,
        Some(v) => empty_counts && v.is_empty(),
    };
    let op = op.strip_prefix(':').unwrap_or(op);
    match op.chars().next() {
        None => Ok(lookup(name, env, warnings)),
        Some('-') if unset => Ok(op[1..].to_owned()),
        Some('?') if unset => Err(format!(
            "{name} must be set{}",
            if op.len() > 1 {
                format!(": {}", &op[1..])
            } else {
                String::new()
            }
        )),
        Some('-' | '?') => Ok(value.unwrap_or_default()),
        Some(_) => Err(format!(
            "${{{expr}}}: unknown operator after {name}: use :- (default) or :? (required)"
        )),
    }
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

    fn env(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_as_compose_does() {
        let mut w = Vec::new();
        let got = interpolate(
            "a:$TAG b:${TAG} c:${NOPE:-x} d:${EMPTY:-y} e:${EMPTY-z} f:$$TAG g:$NOPE h:$1",
            &env,
            &mut w,
        )
        .unwrap();
        assert_eq!(got, "a:1.2 b:1.2 c:x d:y e: f:$TAG g: h:$1");
        assert_eq!(
            w,
            ["The NOPE variable is not set. Defaulting to a blank string."]
        );
        let e = interpolate("x: ${NOPE:?give a tag}", &env, &mut w).unwrap_err();
        assert_eq!(e, "NOPE must be set: give a tag");
        let e = interpolate("a\nb: ${TAG", &env, &mut w).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
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
