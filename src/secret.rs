//! Secrets (webhook URLs, HMAC keys): values that must never reach a log line, an error message
//! or an API answer. `Debug` and `Display` print a placeholder; only `expose` gives the value,
//! and only the code that puts it on the wire calls it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Expands `${NAME}` from the environment. Unset variables are named in the error; values never are.
pub fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unclosed ${ in value".to_string())?;
        let name = &after[..end];
        let value =
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".into());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn expands_variables_and_names_missing_ones() {
        std::env::set_var("UPGRADE_GATE_TEST_SECRET_HOST", "hooks.example");
        assert_eq!(
            expand_env("https://${UPGRADE_GATE_TEST_SECRET_HOST}/x").unwrap(),
            "https://hooks.example/x"
        );
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert_eq!(
            expand_env("${UPGRADE_GATE_TEST_SURELY_UNSET}").unwrap_err(),
            "environment variable UPGRADE_GATE_TEST_SURELY_UNSET is not set"
        );
        assert!(expand_env("${OPEN").is_err());
    }
}
