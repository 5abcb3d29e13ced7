//! SIP domains: the realms subscribers live in.

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult, map_write_error};
use crate::paging::{Page, Paged, like_pattern};
use crate::{InsertedId, Store, on_pool};

/// A SIP domain (`/api/domains`). The name is the digest realm of its subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Domain {
    /// Row id.
    pub id: i64,
    /// Host name or IP literal, stored lower-case (RFC 3261 §19.1.4 compares hosts case-insensitively).
    pub domain: String,
}

/// Input for creating a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDomain {
    /// Host name, IPv4 literal, or IPv6 literal in brackets.
    pub domain: String,
}

/// Filters for [`DomainRepository::list_domains`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainFilter {
    /// ngcp pattern (`*`, `?`) on the domain name.
    pub domain: Option<String>,
}

/// Domains aggregate.
pub trait DomainRepository {
    /// Creates a domain; `Conflict { field: "domain" }` when it exists.
    fn create_domain(&self, new: &NewDomain) -> impl Future<Output = StoreResult<Domain>> + Send;
    /// One domain by id, `NotFound` otherwise.
    fn get_domain(&self, id: i64) -> impl Future<Output = StoreResult<Domain>> + Send;
    /// One domain by name (case-insensitive).
    fn find_domain_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<Domain>>> + Send;
    /// A page of domains ordered by id, with the total count.
    fn list_domains(
        &self,
        filter: &DomainFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<Domain>>> + Send;
    /// Deletes a domain with its subscribers, their numbers and all domain preferences.
    fn delete_domain(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Checks a domain name: a host name of letters, digits, `-` and `.`, an IPv4 literal, or an IPv6
/// literal in brackets (RFC 3261 §25.1 `host`). Returns the lower-case form.
pub(crate) fn normalize_domain(name: &str) -> StoreResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 127 {
        return Err(StoreError::invalid("domain", "must be 1 to 127 characters"));
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        // Canonical spelling (RFC 5952), as SIP routing names the host of a URI.
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|address| format!("[{address}]"))
            .map_err(|_| StoreError::invalid("domain", "not a valid IPv6 reference"));
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !labels_ok {
        return Err(StoreError::invalid(
            "domain",
            "must be a host name, an IPv4 address or a bracketed IPv6 address",
        ));
    }
    Ok(name.to_ascii_lowercase())
}

impl DomainRepository for Store {
    async fn create_domain(&self, new: &NewDomain) -> StoreResult<Domain> {
        let name = normalize_domain(&new.domain)?;
        let id = on_pool!(self, pool => {
            sqlx::query("INSERT INTO domains (domain) VALUES (?)")
                .bind(&name)
                .execute(pool)
                .await
                .map_err(|e| map_write_error(e, "domain", &name, "domain"))?
                .inserted_id()
        });
        Ok(Domain { id, domain: name })
    }

    async fn get_domain(&self, id: i64) -> StoreResult<Domain> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, Domain>("SELECT id, domain FROM domains WHERE id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("domain", id))
    }

    async fn find_domain_by_name(&self, name: &str) -> StoreResult<Option<Domain>> {
        let name = name.trim().to_ascii_lowercase();
        if let Some(reader) = self.direct_reader() {
            // Per-call lookup of the proxy: inline on SQLite files (see direct.rs).
            return reader.read(|connection| {
                use rusqlite::OptionalExtension;
                connection
                    .prepare_cached("SELECT id, domain FROM domains WHERE domain = ?")?
                    .query_row([&name], |row| {
                        Ok(Domain {
                            id: row.get(0)?,
                            domain: row.get(1)?,
                        })
                    })
                    .optional()
            });
        }
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, Domain>("SELECT id, domain FROM domains WHERE domain = ?")
                .bind(&name)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn list_domains(&self, filter: &DomainFilter, page: Page) -> StoreResult<Paged<Domain>> {
        let (limit, offset) = page.limit_offset()?;
        let pattern = filter
            .domain
            .as_deref()
            .map(|p| like_pattern(&p.to_ascii_lowercase()));
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM domains WHERE (? IS NULL OR domain LIKE ? ESCAPE '!')",
            )
            .bind(&pattern)
            .bind(&pattern)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, Domain>(
                "SELECT id, domain FROM domains WHERE (? IS NULL OR domain LIKE ? ESCAPE '!') \
                 ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(&pattern)
            .bind(&pattern)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn delete_domain(&self, id: i64) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM domains WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("domain", id));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_checked_and_lowercased() {
        assert_eq!(
            normalize_domain("SIP.Example.ORG").unwrap(),
            "sip.example.org"
        );
        assert_eq!(normalize_domain("192.0.2.1").unwrap(), "192.0.2.1");
        assert_eq!(normalize_domain("[2001:DB8::1]").unwrap(), "[2001:db8::1]");
        // One spelling per address, the one SIP routing derives from a URI host.
        assert_eq!(
            normalize_domain("[2001:0db8:0:0::1]").unwrap(),
            "[2001:db8::1]"
        );
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a b",
            "x'; DROP TABLE domains; --",
            "[::g]",
        ] {
            assert!(
                matches!(normalize_domain(bad), Err(StoreError::Invalid { ref field, .. }) if field == "domain"),
                "{bad:?} accepted"
            );
        }
    }
}
