//! `-o table|json|yaml`: objects as the API returns them, or the caller's own text for people.

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML. Returns false for `-o table`, for the caller to print its own way.
pub fn structured<T: Serialize>(format: OutputFormat, value: &T) -> Result<bool> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(value)?),
        OutputFormat::Table => return Ok(false),
    }
    Ok(true)
}

/// A list of objects the way kubectl prints one: `kind: List` with `items`.
pub fn list<T: Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items, "metadata": {} })
}
