//! Firehose's Redshift destination on PostgreSQL (Redshift speaks PostgreSQL's protocol):
//! `RedshiftDestinationConfiguration` translated into a `PostgresTable`, with the part of
//! Redshift's `CopyOptions` PostgreSQL's `COPY` can do. A copy option this server does not
//! build is refused, naming it.

use super::shapes::{S3Configuration, destination, enabled, processors, unsupported};
use crate::wire::ApiError;
use serde::Deserialize;
use serde_json::Value;
use sluice_firehose::{CopyFormat, Destination, PostgresTable, Target};
use std::collections::BTreeMap;

/// Metadata keys kept to describe the destination back.
pub(super) const JDBC_URL: &str = "ClusterJDBCURL";
pub(super) const USERNAME: &str = "Username";
pub(super) const COPY_OPTIONS: &str = "CopyOptions";
pub(super) const TABLE_COLUMNS: &str = "DataTableColumns";

/// Every member of a Redshift destination this server reads; any other is refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct RedshiftConfiguration {
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    #[serde(rename = "ClusterJDBCURL")]
    cluster_jdbc_url: String,
    copy_command: CopyCommand,
    username: Option<String>,
    password: Option<String>,
    retry_options: Option<RetryOptions>,
    #[serde(rename = "S3Configuration")]
    s3_configuration: S3Configuration,
    processing_configuration: Option<Value>,
    #[serde(rename = "S3BackupMode")]
    s3_backup_mode: Option<String>,
    #[serde(rename = "S3BackupConfiguration")]
    pub(super) s3_backup_configuration: Option<Value>,
    #[serde(rename = "CloudWatchLoggingOptions")]
    cloud_watch_logging_options: Option<Value>,
    secrets_manager_configuration: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CopyCommand {
    data_table_name: String,
    data_table_columns: Option<String>,
    copy_options: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RetryOptions {
    duration_in_seconds: Option<u64>,
}

/// The destination: flushes staged in the `S3Configuration`'s bucket, then loaded.
pub(super) fn redshift_destination(
    redshift: &RedshiftConfiguration,
    lambda: bool,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Destination, ApiError> {
    if enabled(redshift.secrets_manager_configuration.as_ref()) {
        return Err(unsupported("SecretsManagerConfiguration"));
    }
    let _ = &redshift.cloud_watch_logging_options;
    if !redshift.s3_configuration.is_plain() {
        return Err(ApiError::invalid_argument(
            "S3Configuration takes the plain S3 destination's members only (processors go in RedshiftDestinationConfiguration).",
        ));
    }
    if redshift.username.is_none() || redshift.password.is_none() {
        return Err(ApiError::invalid_argument(
            "Username and Password are required (SecretsManagerConfiguration is not supported yet).",
        ));
    }
    // The staging bucket's settings, its buffering hints included, are the delivery
    // stream's (Firehose's Redshift destination buffers as its S3 configuration says).
    let mut destination = destination(&redshift.s3_configuration, false, metadata)?;
    destination.processors = processors(redshift.processing_configuration.as_ref(), lambda)?;
    destination.backup = super::backup::source_backup(
        redshift.s3_backup_mode.as_deref(),
        redshift.s3_backup_configuration.as_ref(),
        metadata,
    )?;
    if let Some(role) = &redshift.role_arn {
        metadata.insert(super::shapes::ROLE_ARN.to_owned(), role.clone());
    }
    let command = &redshift.copy_command;
    let options = command.copy_options.clone().unwrap_or_default();
    let columns: Vec<String> = command
        .data_table_columns
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    metadata.insert(JDBC_URL.to_owned(), redshift.cluster_jdbc_url.clone());
    metadata.insert(COPY_OPTIONS.to_owned(), options.clone());
    if let Some(columns) = &command.data_table_columns {
        metadata.insert(TABLE_COLUMNS.to_owned(), columns.clone());
    }
    if let Some(user) = &redshift.username {
        metadata.insert(USERNAME.to_owned(), user.clone());
    }
    let url = connection(
        &redshift.cluster_jdbc_url,
        redshift.username.as_deref(),
        redshift.password.as_deref(),
    )?;
    let retry_s = redshift
        .retry_options
        .as_ref()
        .and_then(|r| r.duration_in_seconds)
        .unwrap_or(3600);
    destination.target = Target::Postgres(PostgresTable {
        url,
        table: command.data_table_name.clone(),
        columns,
        format: copy_format(&options)?,
        retry_ms: retry_s.saturating_mul(1000),
    });
    Ok(destination)
}

/// tokio-postgres' `key=value` connection string for `jdbc:redshift://HOST:PORT/DB` (or
/// `jdbc:postgresql://`), its parameters after `?` ignored.
fn connection(jdbc: &str, user: Option<&str>, password: Option<&str>) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid_argument(format!(
            "ClusterJDBCURL {jdbc:?} must be jdbc:redshift://HOST:PORT/DATABASE (or jdbc:postgresql://)."
        ))
    };
    let rest = jdbc
        .strip_prefix("jdbc:redshift://")
        .or_else(|| jdbc.strip_prefix("jdbc:postgresql://"))
        .ok_or_else(invalid)?;
    let rest = rest.split('?').next().unwrap_or_default();
    let (authority, database) = rest.split_once('/').ok_or_else(invalid)?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid())?),
        None => (authority, 5439),
    };
    if host.is_empty() || database.is_empty() {
        return Err(invalid());
    }
    // Values single-quoted, with `\` and `'` escaped, as libpq's connection strings take.
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut config = format!(
        "host={} port={port} dbname={}",
        quote(host),
        quote(database)
    );
    if let Some(user) = user {
        config.push_str(&format!(" user={}", quote(user)));
    }
    if let Some(password) = password {
        config.push_str(&format!(" password={}", quote(password)));
    }
    Ok(config)
}

/// The `COPY` format Redshift's `CopyOptions` describe: `CSV`, `DELIMITER [AS] 'c'`,
/// `[FORMAT [AS]] JSON 'auto'` and `GZIP` (the staged objects' own compression); with none,
/// Redshift's text format (fields separated by `|`).
fn copy_format(options: &str) -> Result<CopyFormat, ApiError> {
    let tokens = tokens(options)?;
    let (mut csv, mut json, mut delimiter) = (false, false, None);
    let mut at = 0;
    while at < tokens.len() {
        let word = tokens[at].to_ascii_uppercase();
        let next = |i: usize| tokens.get(i).map(String::as_str);
        match word.as_str() {
            "CSV" => csv = true,
            "GZIP" => {}
            "FORMAT" if next(at + 1).is_some_and(|t| t.eq_ignore_ascii_case("AS")) => at += 1,
            "FORMAT" => {}
            "JSON" if next(at + 1) == Some("'auto'") => {
                json = true;
                at += 1;
            }
            "DELIMITER" => {
                if next(at + 1).is_some_and(|t| t.eq_ignore_ascii_case("AS")) {
                    at += 1;
                }
                let quoted = next(at + 1).unwrap_or_default();
                let inner = quoted.strip_prefix('\'').and_then(|q| q.strip_suffix('\''));
                let character = match inner {
                    Some("\\t") => Some('\t'),
                    Some(inner) if inner.chars().count() == 1 => inner.chars().next(),
                    _ => None,
                };
                delimiter = Some(character.ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "CopyOptions DELIMITER takes one quoted character, not {quoted:?}."
                    ))
                })?);
                at += 1;
            }
            _ => return Err(unsupported(&format!("CopyOptions {}", tokens[at]))),
        }
        at += 1;
    }
    Ok(match (json, csv) {
        (true, false) if delimiter.is_none() => CopyFormat::JsonAuto,
        (true, _) => {
            return Err(ApiError::invalid_argument(
                "CopyOptions JSON 'auto' takes neither CSV nor DELIMITER.",
            ));
        }
        (false, true) => CopyFormat::Csv {
            delimiter: delimiter.unwrap_or(','),
        },
        (false, false) => CopyFormat::Text {
            delimiter: delimiter.unwrap_or('|'),
        },
    })
}

/// Words and single-quoted strings (quotes kept).
fn tokens(options: &str) -> Result<Vec<String>, ApiError> {
    let mut tokens = Vec::new();
    let mut chars = options.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            let mut quoted = String::from(chars.next().unwrap_or('\''));
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => quoted.push(c),
                    None => {
                        return Err(ApiError::invalid_argument(
                            "CopyOptions has an unclosed quote.",
                        ));
                    }
                }
            }
            quoted.push('\'');
            tokens.push(quoted);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace() && **c != '\'') {
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_options_become_copy_formats_and_the_rest_is_refused() {
        let format = |o: &str| copy_format(o).map_err(|e| e.message);
        assert_eq!(format(""), Ok(CopyFormat::Text { delimiter: '|' }));
        assert_eq!(format("json 'auto'"), Ok(CopyFormat::JsonAuto));
        assert_eq!(
            format("FORMAT AS JSON 'auto' GZIP"),
            Ok(CopyFormat::JsonAuto)
        );
        assert_eq!(format("CSV"), Ok(CopyFormat::Csv { delimiter: ',' }));
        assert_eq!(
            format("csv delimiter as ';'"),
            Ok(CopyFormat::Csv { delimiter: ';' })
        );
        assert_eq!(
            format("DELIMITER '\\t'"),
            Ok(CopyFormat::Text { delimiter: '\t' })
        );
        for bad in [
            "JSON 's3://bucket/jsonpaths'",
            "TIMEFORMAT 'auto'",
            "DELIMITER 'ab'",
            "DELIMITER",
            "CSV JSON 'auto'",
            "DELIMITER ','  JSON 'auto'",
            "'unclosed",
        ] {
            assert!(format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jdbc_urls_become_connection_strings_with_quoted_values() {
        assert_eq!(
            connection(
                "jdbc:redshift://db.local:5439/dev?ssl=true",
                Some("fh"),
                Some("p'w\\d")
            )
            .ok(),
            Some(
                "host='db.local' port=5439 dbname='dev' user='fh' password='p\\'w\\\\d'".to_owned()
            )
        );
        assert_eq!(
            connection("jdbc:postgresql://127.0.0.1/x", None, None).ok(),
            Some("host='127.0.0.1' port=5439 dbname='x'".to_owned())
        );
        for bad in [
            "postgres://h/db",
            "jdbc:redshift://h:99999/db",
            "jdbc:redshift://h:5439",
            "jdbc:redshift:///db",
        ] {
            assert!(connection(bad, None, None).is_err(), "{bad}");
        }
    }
}
