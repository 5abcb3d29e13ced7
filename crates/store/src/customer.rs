//! Customers: the contracts subscribers belong to.

use serde::{Deserialize, Serialize};

use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind};
use crate::paging::{Page, Paged, like_pattern};
use crate::{InsertedId, Store, on_pool, text_enum};

text_enum! {
    /// Customer life cycle (`status` in `/api/customers`).
    #[derive(Default)]
    CustomerStatus, "status" {
        /// In service.
        #[default]
        Active = "active",
        /// Created, not yet active.
        Pending = "pending",
        /// Calls blocked.
        Locked = "locked",
        /// Ended.
        Terminated = "terminated",
    }
}

/// A customer (`/api/customers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Customer {
    /// Row id.
    pub id: i64,
    /// Display name of the customer.
    pub name: String,
    /// Life-cycle status.
    #[sqlx(try_from = "String")]
    pub status: CustomerStatus,
    /// Operator's own reference, if any.
    pub external_id: Option<String>,
}

/// Input for creating or replacing a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// Display name (1–255 characters).
    pub name: String,
    /// Defaults to `active`.
    #[serde(default)]
    pub status: CustomerStatus,
    /// Operator's own reference.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// Filters for [`CustomerRepository::list_customers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFilter {
    /// Exact status.
    pub status: Option<CustomerStatus>,
    /// ngcp pattern on `external_id`.
    pub external_id: Option<String>,
    /// ngcp pattern on `name`.
    pub name: Option<String>,
}

/// Customers aggregate.
pub trait CustomerRepository {
    /// Creates a customer.
    fn create_customer(
        &self,
        new: &NewCustomer,
    ) -> impl Future<Output = StoreResult<Customer>> + Send;
    /// One customer by id.
    fn get_customer(&self, id: i64) -> impl Future<Output = StoreResult<Customer>> + Send;
    /// A page of customers ordered by id.
    fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<Customer>>> + Send;
    /// Replaces every field (PUT semantics).
    fn update_customer(
        &self,
        id: i64,
        new: &NewCustomer,
    ) -> impl Future<Output = StoreResult<Customer>> + Send;
    /// Deletes a customer without subscribers; `InUse` while it has some.
    fn delete_customer(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
}

fn check_customer(new: &NewCustomer) -> StoreResult<()> {
    check_text("name", &new.name, 1, 255)?;
    if let Some(external_id) = &new.external_id {
        check_text("external_id", external_id, 0, 255)?;
    }
    Ok(())
}

/// Rejects text outside `min..=max` characters or containing control characters.
pub(crate) fn check_text(field: &str, value: &str, min: usize, max: usize) -> StoreResult<()> {
    let count = value.chars().count();
    if count < min || count > max {
        return Err(StoreError::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl CustomerRepository for Store {
    async fn create_customer(&self, new: &NewCustomer) -> StoreResult<Customer> {
        check_customer(new)?;
        let id = on_pool!(self, pool => {
            sqlx::query("INSERT INTO customers (name, status, external_id) VALUES (?, ?, ?)")
                .bind(&new.name)
                .bind(new.status.as_str())
                .bind(&new.external_id)
                .execute(pool)
                .await
                .map_err(StoreError::from)?
                .inserted_id()
        });
        Ok(Customer {
            id,
            name: new.name.clone(),
            status: new.status,
            external_id: new.external_id.clone(),
        })
    }

    async fn get_customer(&self, id: i64) -> StoreResult<Customer> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, Customer>(
                "SELECT id, name, status, external_id FROM customers WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or_else(|| StoreError::not_found("customer", id))
    }

    async fn list_customers(
        &self,
        filter: &CustomerFilter,
        page: Page,
    ) -> StoreResult<Paged<Customer>> {
        let (limit, offset) = page.limit_offset()?;
        let status = filter.status.map(CustomerStatus::as_str);
        let external_id = filter.external_id.as_deref().map(like_pattern);
        let name = filter.name.as_deref().map(like_pattern);
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM customers WHERE (? IS NULL OR status = ?) \
                 AND (? IS NULL OR external_id LIKE ? ESCAPE '!') \
                 AND (? IS NULL OR name LIKE ? ESCAPE '!')",
            )
            .bind(status).bind(status)
            .bind(&external_id).bind(&external_id)
            .bind(&name).bind(&name)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, Customer>(
                "SELECT id, name, status, external_id FROM customers WHERE (? IS NULL OR status = ?) \
                 AND (? IS NULL OR external_id LIKE ? ESCAPE '!') \
                 AND (? IS NULL OR name LIKE ? ESCAPE '!') ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(status).bind(status)
            .bind(&external_id).bind(&external_id)
            .bind(&name).bind(&name)
            .bind(limit).bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn update_customer(&self, id: i64, new: &NewCustomer) -> StoreResult<Customer> {
        check_customer(new)?;
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE customers SET name = ?, status = ?, external_id = ? WHERE id = ?")
                .bind(&new.name)
                .bind(new.status.as_str())
                .bind(&new.external_id)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            // MariaDB reports 0 for an update that changes nothing, so check existence.
            self.get_customer(id).await?;
        }
        Ok(Customer {
            id,
            name: new.name.clone(),
            status: new.status,
            external_id: new.external_id.clone(),
        })
    }

    async fn delete_customer(&self, id: i64) -> StoreResult<()> {
        let result = on_pool!(self, pool => {
            sqlx::query("DELETE FROM customers WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        match result {
            Ok(0) => Err(StoreError::not_found("customer", id)),
            Ok(_) => Ok(()),
            Err(e) if constraint_kind(&e) == ConstraintKind::ForeignKey => Err(StoreError::InUse {
                entity: "customer",
                key: id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}
