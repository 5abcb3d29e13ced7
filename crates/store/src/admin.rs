//! Administrator accounts for the REST API's HTTP Basic authentication.

use serde::{Deserialize, Serialize};

use crate::credentials::{hash_password, spend_verification_time, verify_password};
use crate::customer::check_text;
use crate::error::{StoreError, StoreResult, map_write_error};
use crate::paging::{Page, Paged};
use crate::{InsertedId, Store, on_pool};

/// Login of the account [`AdminRepository::ensure_initial_admin`] creates (the ngcp default).
pub const INITIAL_ADMIN_LOGIN: &str = "administrator";

/// An administrator (never carries the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Admin {
    /// Row id.
    pub id: i64,
    /// Login name, unique.
    pub login: String,
    /// Superuser (`admin` role) rather than a restricted one.
    pub is_superuser: bool,
    /// Inactive accounts cannot log in.
    pub is_active: bool,
}

/// Input for creating an administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAdmin {
    /// Login name (1–127 characters, no control characters, no `:` since Basic auth splits on it).
    pub login: String,
    /// Clear password; stored only as an argon2 hash.
    pub password: String,
    /// Superuser flag.
    #[serde(default)]
    pub is_superuser: bool,
}

/// Administrators aggregate.
pub trait AdminRepository {
    /// Creates an administrator; `Conflict { field: "login" }` if the login exists.
    fn create_admin(&self, new: &NewAdmin) -> impl Future<Output = StoreResult<Admin>> + Send;
    /// One administrator by id.
    fn get_admin(&self, id: i64) -> impl Future<Output = StoreResult<Admin>> + Send;
    /// A page of administrators ordered by id.
    fn list_admins(&self, page: Page) -> impl Future<Output = StoreResult<Paged<Admin>>> + Send;
    /// Deletes an administrator.
    fn delete_admin(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Sets a new password.
    fn set_admin_password(
        &self,
        id: i64,
        password: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Checks a login; `Some(admin)` only for an active account with the right password.
    fn verify_admin(
        &self,
        login: &str,
        password: &str,
    ) -> impl Future<Output = StoreResult<Option<Admin>>> + Send;
    /// Creates superuser [`INITIAL_ADMIN_LOGIN`] when no administrator exists yet; returns it if
    /// created, `None` if there already was one.
    fn ensure_initial_admin(
        &self,
        password: &str,
    ) -> impl Future<Output = StoreResult<Option<Admin>>> + Send;
}

fn check_login(login: &str) -> StoreResult<()> {
    check_text("login", login, 1, 127)?;
    if login.contains(':') {
        return Err(StoreError::invalid("login", "must not contain ':'"));
    }
    Ok(())
}

fn check_admin_password(password: &str) -> StoreResult<()> {
    if password.len() < 6 || password.len() > 255 {
        return Err(StoreError::invalid("password", "must be 6 to 255 bytes"));
    }
    Ok(())
}

impl AdminRepository for Store {
    async fn create_admin(&self, new: &NewAdmin) -> StoreResult<Admin> {
        check_login(&new.login)?;
        check_admin_password(&new.password)?;
        let hash = hash_password(&new.password).await?;
        let id = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO admins (login, password_hash, is_superuser, is_active) VALUES (?, ?, ?, ?)",
            )
            .bind(&new.login)
            .bind(&hash)
            .bind(new.is_superuser)
            .bind(true)
            .execute(pool)
            .await
            .map_err(|e| map_write_error(e, "login", &new.login, "login"))?
            .inserted_id()
        });
        Ok(Admin {
            id,
            login: new.login.clone(),
            is_superuser: new.is_superuser,
            is_active: true,
        })
    }

    async fn get_admin(&self, id: i64) -> StoreResult<Admin> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, Admin>(
                "SELECT id, login, is_superuser, is_active FROM admins WHERE id = ?",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or_else(|| StoreError::not_found("admin", id))
    }

    async fn list_admins(&self, page: Page) -> StoreResult<Paged<Admin>> {
        let (limit, offset) = page.limit_offset()?;
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins")
                .fetch_one(pool)
                .await?;
            let items = sqlx::query_as::<_, Admin>(
                "SELECT id, login, is_superuser, is_active FROM admins ORDER BY id LIMIT ? OFFSET ?",
            )
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn delete_admin(&self, id: i64) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM admins WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("admin", id));
        }
        Ok(())
    }

    async fn set_admin_password(&self, id: i64, password: &str) -> StoreResult<()> {
        check_admin_password(password)?;
        let hash = hash_password(password).await?;
        let affected = on_pool!(self, pool => {
            sqlx::query("UPDATE admins SET password_hash = ? WHERE id = ?")
                .bind(&hash)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("admin", id));
        }
        Ok(())
    }

    async fn verify_admin(&self, login: &str, password: &str) -> StoreResult<Option<Admin>> {
        let row: Option<(i64, String, bool, bool, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, login, is_superuser, is_active, password_hash FROM admins WHERE login = ?",
            )
            .bind(login)
            .fetch_optional(pool)
            .await?
        });
        let Some((id, login, is_superuser, is_active, hash)) = row else {
            spend_verification_time(password).await?;
            return Ok(None);
        };
        if verify_password(password, &hash).await? && is_active {
            Ok(Some(Admin {
                id,
                login,
                is_superuser,
                is_active,
            }))
        } else {
            Ok(None)
        }
    }

    async fn ensure_initial_admin(&self, password: &str) -> StoreResult<Option<Admin>> {
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM admins").fetch_one(pool).await?
        });
        if count > 0 {
            return Ok(None);
        }
        let new = NewAdmin {
            login: INITIAL_ADMIN_LOGIN.to_owned(),
            password: password.to_owned(),
            is_superuser: true,
        };
        match self.create_admin(&new).await {
            Ok(admin) => Ok(Some(admin)),
            // Another process created it between the count and the insert.
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
