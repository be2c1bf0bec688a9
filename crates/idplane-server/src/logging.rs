//! The server's log lines: text on a terminal, JSON otherwise, filtered by
//! `IDPLANE_LOG`.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, JsonFields, Writer};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IDPLANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .fmt_fields(SplicedJsonFields::default())
            .try_init()
    } else {
        builder.try_init()
    };
}

/// JSON span fields that a later `record` extends in place. The stock
/// formatter parses and re-serialises all of a span's fields on every
/// `record`, a cost every authenticated request paid for its `actor`.
/// A key recorded twice appears twice; readers of the line keep the last.
#[derive(Default)]
struct SplicedJsonFields(JsonFields);

impl<'writer> FormatFields<'writer> for SplicedJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        self.0.format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.0.format_fields(Writer::new(&mut added), fields)?;
        current.fields = splice(&current.fields, &added);
        Ok(())
    }
}

/// The members of two JSON objects (as formatted) in one.
fn splice(current: &str, added: &str) -> String {
    let members = |object: &str| {
        object
            .strip_prefix('{')
            .and_then(|o| o.strip_suffix('}'))
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
    };
    match (members(current), members(added)) {
        (Some(old), Some(new)) => format!("{{{old},{new}}}"),
        (None, Some(_)) => added.to_owned(),
        (_, None) => current.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::splice;

    #[test]
    fn spliced_members_read_as_one_object() {
        let both = splice(r#"{"method":"POST","path":"/x"}"#, r#"{"actor":"root"}"#);
        let parsed: Value = serde_json::from_str(&both).unwrap();
        assert_eq!(
            parsed,
            json!({"method": "POST", "path": "/x", "actor": "root"})
        );
    }

    #[test]
    fn empty_sides_leave_valid_json() {
        assert_eq!(splice("", r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(splice("{}", r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(splice(r#"{"a":1}"#, "{}"), r#"{"a":1}"#);
        assert_eq!(splice(r#"{"a":1}"#, ""), r#"{"a":1}"#);
    }

    #[test]
    fn a_key_recorded_again_reads_as_its_last_value() {
        let twice = splice(r#"{"actor":"anonymous"}"#, r#"{"actor":"root"}"#);
        let parsed: Value = serde_json::from_str(&twice).unwrap();
        assert_eq!(parsed["actor"], "root");
    }
}
