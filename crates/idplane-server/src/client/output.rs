//! Printing: aligned tables for people, JSON for programs.

use std::fmt;
use std::io::Write;

use comfy_table::{Table, presets};
use serde_json::Value;

/// `println!` that does not panic when standard output is closed early
/// (`idplane user list | head -1`): the output is simply not wanted.
macro_rules! outln {
    () => {
        $crate::client::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::client::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes to standard output, ignoring a closed pipe.
pub fn write_out(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done when stdout is gone.
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows under a header, columns aligned, without borders.
pub fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(header.to_vec())
        .add_rows(rows);
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// Prints an object as `FIELD  VALUE` lines, in the given order; absent
/// fields are skipped.
pub fn print_fields(value: &Value, fields: &[(&str, &str)]) {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .filter_map(|(label, key)| {
            let shown = text(value, key);
            (shown != "-").then(|| vec![(*label).to_owned(), shown])
        })
        .collect();
    let mut table = Table::new();
    table.load_style(presets::NOTHING).add_rows(rows);
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        outln!("{}", line.trim_end());
    }
}

/// A field of `value` for display: strings bare, `-` when absent or null,
/// objects and arrays as compact JSON (`-` when empty).
pub fn text(value: &Value, key: &str) -> String {
    show(value.get(key).unwrap_or(&Value::Null))
}

/// A JSON value for display.
pub fn show(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.is_empty() => "-".to_owned(),
        Value::Object(o) if o.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

/// A string field, if present.
pub fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}
