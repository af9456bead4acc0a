//! `postgres://user:password@host:port/database?kb=NAME`: which server, which database, and
//! which knowledge base in it (schema `kb_NAME`), plus the HNSW settings. Parameters other than
//! ours go to the client as libpq would take them (`connect_timeout`, `application_name`...).

use crate::{Error, Result};
use std::str::FromStr;

/// Does `s` name a knowledge base on PostgreSQL?
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The HNSW index over a knowledge base's vectors (pgvector's parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswOptions {
    /// Neighbours per node (`?hnsw_m=`).
    pub m: u32,
    /// Candidate list while building (`?hnsw_ef_construction=`).
    pub ef_construction: u32,
    /// Candidate list while searching (`?ef_search=`); larger finds more true neighbours,
    /// slower.
    pub ef_search: u32,
    /// Below this many chunks no index is built and search is exact (`?hnsw_min_chunks=`).
    /// The index is built once a sync ends above it: building after a bulk load is several
    /// times faster than inserting into the graph row by row.
    pub min_chunks: usize,
}

impl Default for HnswOptions {
    fn default() -> Self {
        HnswOptions {
            m: 16,
            ef_construction: 64,
            ef_search: 100,
            min_chunks: 10_000,
        }
    }
}

/// A parsed knowledge-base URL.
#[derive(Debug, Clone)]
pub struct Location {
    pub config: postgres::Config,
    /// The knowledge base's name (`?kb=`, default `default`).
    pub name: String,
    /// Its schema: `kb_` + name.
    pub schema: String,
    pub hnsw: HnswOptions,
    shown: String,
}

impl Location {
    /// Parses `url`; without a password in it, `PGPASSWORD` is used when set, as libpq does,
    /// so the password need not be on a command line.
    pub fn parse(url: &str) -> Result<Self> {
        Self::parse_with(url, std::env::var("PGPASSWORD").ok())
    }

    fn parse_with(url: &str, env_password: Option<String>) -> Result<Self> {
        let shown = without_password(url);
        let bad = |reason: String| Error::Url {
            url: shown.clone(),
            reason,
        };
        if !is_postgres_url(url) {
            return Err(bad("not a postgres:// URL".into()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut name = "default".to_owned();
        let mut hnsw = HnswOptions::default();
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number =
                |what: &str| -> Result<u64> {
                    value.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("{what}={value:?} must be a positive whole number"))
                    })
                };
            match key {
                "kb" => name = value.to_owned(),
                "hnsw_m" => hnsw.m = number(key)?.min(100) as u32,
                "hnsw_ef_construction" => hnsw.ef_construction = number(key)?.min(1000) as u32,
                "ef_search" => hnsw.ef_search = number(key)?.min(1000) as u32,
                "hnsw_min_chunks" => hnsw.min_chunks = number(key)? as usize,
                "sslmode" if matches!(value, "require" | "verify-ca" | "verify-full") => {
                    return Err(bad(format!(
                        "sslmode={value}: TLS connections are not supported yet; reach the \
                         server over a private network or a local TLS-terminating proxy \
                         (pgbouncer, stunnel) and use sslmode=disable"
                    )));
                }
                _ => passed.push(pair),
            }
        }
        if name.is_empty()
            || name.len() > 48
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad(format!(
                "kb={name:?}: a knowledge base's name is 1 to 48 characters of a-z, 0-9 and _"
            )));
        }
        let client_url = if passed.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = postgres::Config::from_str(&client_url).map_err(|e| {
            bad(format!(
                "{e}; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE?kb=NAME"
            ))
        })?;
        if config.get_application_name().is_none() {
            config.application_name("ragtune");
        }
        if config.get_password().is_none()
            && let Some(password) = env_password.filter(|p| !p.is_empty())
        {
            config.password(password);
        }
        Ok(Location {
            config,
            schema: format!("kb_{name}"),
            name,
            hnsw,
            shown,
        })
    }

    /// The URL with its password replaced by `***`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpassword_is_used_only_when_the_url_has_no_password() {
        let env = || Some("from-env".to_owned());
        let loc = Location::parse_with("postgres://me@db.example/rag?kb=x", env()).unwrap();
        assert_eq!(loc.config.get_password(), Some(&b"from-env"[..]));
        assert!(!loc.shown().contains("from-env"));
        let loc = Location::parse_with("postgres://me:inurl@db.example/rag", env()).unwrap();
        assert_eq!(loc.config.get_password(), Some(&b"inurl"[..]));
        let loc =
            Location::parse_with("postgres://me@db.example/rag", Some(String::new())).unwrap();
        assert_eq!(loc.config.get_password(), None);
    }

    #[test]
    fn parses_the_kb_name_and_hides_the_password() {
        let loc =
            Location::parse("postgres://me:secret@db.example:5433/rag?kb=support&ef_search=64")
                .unwrap();
        assert_eq!(loc.schema, "kb_support");
        assert_eq!(loc.hnsw.ef_search, 64);
        assert_eq!(
            loc.shown(),
            "postgres://me:***@db.example:5433/rag?kb=support&ef_search=64"
        );
        assert_eq!(loc.config.get_dbname(), Some("rag"));
        assert_eq!(loc.config.get_ports(), &[5433]);
    }

    #[test]
    fn refuses_bad_names_and_tls() {
        let e = Location::parse("postgres://h/db?kb=Drop;Table")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a-z, 0-9 and _"), "{e}");
        let e = Location::parse("postgres://u:pw@h/db?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("TLS") && !e.contains("pw"), "{e}");
        let e = Location::parse("postgres://h/db?ef_search=0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
    }
}
