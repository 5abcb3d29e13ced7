//! Subscribers and their E.164 numbers, plus the credential lookups the SIP side needs.

use serde::{Deserialize, Serialize};

use crate::credentials::{
    ha1_md5, ha1_sha256, hash_password, spend_verification_time, verify_password,
};
use crate::customer::check_text;
use crate::error::{ConstraintKind, StoreError, StoreResult, constraint_kind};
use crate::paging::{Page, Paged, like_pattern};
use crate::{InsertedId, Store, on_pool, text_enum};

text_enum! {
    /// Subscriber status (`status` in `/api/subscribers`).
    #[derive(Default)]
    SubscriberStatus, "status" {
        /// May register and call.
        #[default]
        Active = "active",
        /// Registered but calls are blocked (ngcp forces lock level 4).
        Locked = "locked",
        /// Out of service.
        Terminated = "terminated",
    }
}

/// A number as entered: country code, area code, subscriber number (digits only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct E164Number {
    /// Country code, 1–4 digits, not 0.
    pub cc: String,
    /// Area code, 0–7 digits.
    #[serde(default)]
    pub ac: String,
    /// Subscriber number, 1–31 digits.
    pub sn: String,
}

impl E164Number {
    /// Builds a number from its parts.
    pub fn new(cc: impl Into<String>, ac: impl Into<String>, sn: impl Into<String>) -> Self {
        E164Number {
            cc: cc.into(),
            ac: ac.into(),
            sn: sn.into(),
        }
    }

    /// The full E.164 digit string `cc ac sn` (ITU-T E.164 §6, no leading `+`).
    pub fn e164(&self) -> String {
        format!("{}{}{}", self.cc, self.ac, self.sn)
    }

    /// Checks the parts; `field` names the input for the error (`primary_number`, `alias_numbers`).
    pub fn validate(&self, field: &str) -> StoreResult<()> {
        fn digits(value: &str, min: usize, max: usize) -> bool {
            (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
        }
        if !digits(&self.cc, 1, 4) || self.cc.bytes().all(|b| b == b'0') {
            return Err(StoreError::invalid(
                format!("{field}.cc"),
                "must be 1 to 4 digits and not 0",
            ));
        }
        if !digits(&self.ac, 0, 7) {
            return Err(StoreError::invalid(
                format!("{field}.ac"),
                "must be 0 to 7 digits",
            ));
        }
        if !digits(&self.sn, 1, 31) {
            return Err(StoreError::invalid(
                format!("{field}.sn"),
                "must be 1 to 31 digits",
            ));
        }
        Ok(())
    }
}

/// An alias number as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasNumber {
    /// Country code.
    pub cc: String,
    /// Area code.
    #[serde(default)]
    pub ac: String,
    /// Subscriber number.
    pub sn: String,
    /// Device id rather than a dialable number (default false).
    #[serde(default)]
    pub is_devid: bool,
}

impl AliasNumber {
    /// The number part.
    pub fn number(&self) -> E164Number {
        E164Number::new(&self.cc, &self.ac, &self.sn)
    }
}

/// A stored number (`/api/numbers`); also the items of `primary_number` / `alias_numbers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Number {
    /// Row id (`number_id` in the subscriber view).
    pub id: i64,
    /// Owning subscriber.
    pub subscriber_id: i64,
    /// Country code.
    pub cc: String,
    /// Area code.
    pub ac: String,
    /// Subscriber number.
    pub sn: String,
    /// The full E.164 digits, unique system-wide.
    pub e164: String,
    /// True for the subscriber's primary number.
    pub is_primary: bool,
    /// Device id rather than a dialable number.
    pub is_devid: bool,
}

/// A subscriber as read back (`/api/subscribers` item without secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// Row id.
    pub id: i64,
    /// Stable UUID (used in CDRs as `user_id`).
    pub uuid: String,
    /// Owning customer (cannot change).
    pub customer_id: i64,
    /// Domain id.
    pub domain_id: i64,
    /// Domain name (the digest realm).
    pub domain: String,
    /// SIP user part, unique per domain.
    pub username: String,
    /// Web/API login name, unique per domain when set.
    pub webusername: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Operator's own reference.
    pub external_id: Option<String>,
    /// Status.
    pub status: SubscriberStatus,
    /// Subscriber-admin role for its customer.
    pub administrative: bool,
    /// Primary number, if any.
    pub primary_number: Option<Number>,
    /// Alias numbers in id order.
    pub alias_numbers: Vec<Number>,
}

/// Input for creating a subscriber. Passwords are hashed at once and never stored in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSubscriber {
    /// Owning customer.
    pub customer_id: i64,
    /// Domain id.
    pub domain_id: i64,
    /// SIP user part: `A-Z a-z 0-9 + = , ; _ . ~ ' ( ) ! * -`, no leading, trailing or doubled dot.
    pub username: String,
    /// SIP digest secret; stored only as HA1 (MD5 and SHA-256).
    pub password: String,
    /// Web/API login name.
    #[serde(default)]
    pub webusername: Option<String>,
    /// Web/API password; stored only as an argon2 hash.
    #[serde(default)]
    pub webpassword: Option<String>,
    /// Display name (≤128).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Operator's own reference.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Defaults to `active`.
    #[serde(default)]
    pub status: SubscriberStatus,
    /// Subscriber-admin role.
    #[serde(default)]
    pub administrative: bool,
    /// Primary number.
    #[serde(default)]
    pub primary_number: Option<E164Number>,
    /// Alias numbers; the stored list becomes exactly this.
    #[serde(default)]
    pub alias_numbers: Vec<AliasNumber>,
}

/// Input for replacing a subscriber (PUT). `None` passwords keep the stored hashes; the SIP
/// password is required when username or domain change, because HA1 includes both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberUpdate {
    /// Must equal the stored customer (`customer_id can't be changed`).
    pub customer_id: i64,
    /// Domain id.
    pub domain_id: i64,
    /// SIP user part.
    pub username: String,
    /// New SIP password, or keep.
    #[serde(default)]
    pub password: Option<String>,
    /// Web login (None clears it).
    #[serde(default)]
    pub webusername: Option<String>,
    /// New web password, or keep.
    #[serde(default)]
    pub webpassword: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Operator's own reference.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Status.
    #[serde(default)]
    pub status: SubscriberStatus,
    /// Subscriber-admin role.
    #[serde(default)]
    pub administrative: bool,
    /// Primary number.
    #[serde(default)]
    pub primary_number: Option<E164Number>,
    /// Alias numbers; the stored list becomes exactly this.
    #[serde(default)]
    pub alias_numbers: Vec<AliasNumber>,
}

/// What the registrar and proxy need to challenge a subscriber (RFC 3261 §22, RFC 7616).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SipCredentials {
    /// Subscriber id.
    pub subscriber_id: i64,
    /// The subscriber's public uuid (accounting names subscribers by it).
    pub uuid: String,
    /// The customer the subscriber belongs to.
    pub customer_id: i64,
    /// `MD5(username:realm:password)` hex.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)` hex.
    pub ha1_sha256: String,
    /// Status; the caller decides what a locked or terminated subscriber may do.
    #[sqlx(try_from = "String")]
    pub status: SubscriberStatus,
}

const SIP_CREDENTIALS: &str = "SELECT s.id AS subscriber_id, s.uuid, s.customer_id, s.ha1_md5, \
     s.ha1_sha256, s.status FROM subscribers s JOIN domains d ON d.id = s.domain_id \
     WHERE s.username = ? AND d.domain = ?";

/// Filters for [`SubscriberRepository::list_subscribers`]; all given filters must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberFilter {
    /// ngcp pattern on `username`.
    pub username: Option<String>,
    /// Exact web login.
    pub webusername: Option<String>,
    /// Exact domain name.
    pub domain: Option<String>,
    /// Exact domain id.
    pub domain_id: Option<i64>,
    /// Exact customer id.
    pub customer_id: Option<i64>,
    /// Exact status.
    pub status: Option<SubscriberStatus>,
    /// Exact external id.
    pub external_id: Option<String>,
    /// Any of the subscriber's numbers, exact E.164 digits.
    pub number: Option<String>,
    /// The primary number, exact E.164 digits.
    pub primary_number: Option<String>,
    /// One of the alias numbers, exact E.164 digits.
    pub alias: Option<String>,
    /// ngcp pattern on `display_name`.
    pub display_name: Option<String>,
}

/// Filters for [`SubscriberRepository::list_numbers`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberFilter {
    /// Owning subscriber.
    pub subscriber_id: Option<i64>,
    /// Customer of the owning subscriber.
    pub customer_id: Option<i64>,
    /// Exact country code.
    pub cc: Option<String>,
    /// Exact area code.
    pub ac: Option<String>,
    /// Exact subscriber number.
    pub sn: Option<String>,
    /// `Some(true)` primary only, `Some(false)` aliases only.
    pub is_primary: Option<bool>,
}

/// The writable fields of `/api/numbers/{id}`: moving an alias, flagging a device id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberUpdate {
    /// New owner; a primary number cannot move.
    pub subscriber_id: i64,
    /// Device-id flag.
    #[serde(default)]
    pub is_devid: bool,
}

/// Subscribers aggregate (with their numbers).
pub trait SubscriberRepository {
    /// Creates a subscriber and its numbers in one transaction.
    fn create_subscriber(
        &self,
        new: &NewSubscriber,
    ) -> impl Future<Output = StoreResult<Subscriber>> + Send;
    /// One subscriber by id.
    fn get_subscriber(&self, id: i64) -> impl Future<Output = StoreResult<Subscriber>> + Send;
    /// One subscriber by SIP username and domain name.
    fn find_subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> impl Future<Output = StoreResult<Option<Subscriber>>> + Send;
    /// A page of subscribers ordered by id.
    fn list_subscribers(
        &self,
        filter: &SubscriberFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<Subscriber>>> + Send;
    /// Replaces a subscriber and its numbers in one transaction (PUT semantics).
    fn update_subscriber(
        &self,
        id: i64,
        update: &SubscriberUpdate,
    ) -> impl Future<Output = StoreResult<Subscriber>> + Send;
    /// Deletes a subscriber with its numbers, preferences and call-forward sets.
    fn delete_subscriber(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;
    /// Digest credentials by SIP username and domain (realm); `None` if no such subscriber.
    fn find_sip_credentials(
        &self,
        username: &str,
        domain: &str,
    ) -> impl Future<Output = StoreResult<Option<SipCredentials>>> + Send;
    /// The subscriber owning an E.164 number (primary or alias).
    fn find_subscriber_by_number(
        &self,
        e164: &str,
    ) -> impl Future<Output = StoreResult<Option<Subscriber>>> + Send;
    /// Web/API login check: `webusername` (or `username` when no web login is set) at `domain`.
    fn verify_subscriber_web_password(
        &self,
        login: &str,
        domain: &str,
        password: &str,
    ) -> impl Future<Output = StoreResult<Option<Subscriber>>> + Send;
    /// A page of numbers ordered by id.
    fn list_numbers(
        &self,
        filter: &NumberFilter,
        page: Page,
    ) -> impl Future<Output = StoreResult<Paged<Number>>> + Send;
    /// One number by id.
    fn get_number(&self, id: i64) -> impl Future<Output = StoreResult<Number>> + Send;
    /// Moves an alias to another subscriber and/or sets `is_devid`.
    fn update_number(
        &self,
        id: i64,
        update: &NumberUpdate,
    ) -> impl Future<Output = StoreResult<Number>> + Send;
}

/// Checks a SIP user part against the ngcp rule (a subset of RFC 3261 §25.1 `user` without
/// escapes): `A-Z a-z 0-9 + = , ; _ . ~ ' ( ) ! * -`, no leading, trailing or doubled dot.
pub(crate) fn check_username(field: &str, value: &str) -> StoreResult<()> {
    if value.is_empty() || value.len() > 127 {
        return Err(StoreError::invalid(field, "must be 1 to 127 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,;_.~'()!*-".contains(c);
    if let Some(bad) = value.chars().find(|&c| !allowed(c)) {
        return Err(StoreError::invalid(
            field,
            format!("character {bad:?} is not allowed"),
        ));
    }
    if value.starts_with('.') || value.ends_with('.') || value.contains("..") {
        return Err(StoreError::invalid(
            field,
            "must not start or end with a dot or contain two dots in a row",
        ));
    }
    Ok(())
}

fn check_password(field: &str, value: &str) -> StoreResult<()> {
    if value.is_empty() || value.len() > 255 {
        return Err(StoreError::invalid(field, "must be 1 to 255 bytes"));
    }
    Ok(())
}

fn check_optional_text(field: &str, value: &Option<String>, max: usize) -> StoreResult<()> {
    match value {
        Some(text) => check_text(field, text, 0, max),
        None => Ok(()),
    }
}

/// The numbers of a subscriber write, validated and checked for duplicates within the request.
fn collect_numbers(
    primary: &Option<E164Number>,
    aliases: &[AliasNumber],
) -> StoreResult<Vec<(E164Number, bool, bool)>> {
    let mut numbers = Vec::with_capacity(aliases.len() + 1);
    if let Some(primary) = primary {
        primary.validate("primary_number")?;
        numbers.push((primary.clone(), true, false));
    }
    for alias in aliases {
        let number = alias.number();
        number.validate("alias_numbers")?;
        numbers.push((number, false, alias.is_devid));
    }
    let mut seen = std::collections::HashSet::new();
    for (number, _, _) in &numbers {
        let e164 = number.e164();
        if !seen.insert(e164.clone()) {
            return Err(StoreError::invalid(
                "alias_numbers",
                format!("number '{e164}' is given twice"),
            ));
        }
    }
    Ok(numbers)
}

/// Whether a unique-violation message names `needle` as the violated column or key. Only the text
/// after MariaDB's `for key '` is searched, because the part before it echoes client data.
pub(crate) fn unique_violation_names(error: &sqlx::Error, needle: &str) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let message = db.message();
            let tail = message
                .rfind("for key '")
                .map_or(message, |at| &message[at..]);
            tail.contains(needle)
        }
        _ => false,
    }
}

fn subscriber_write_error(
    error: sqlx::Error,
    username: &str,
    webusername: Option<&str>,
) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::Unique if unique_violation_names(&error, "webusername") => {
            StoreError::Conflict {
                field: "webusername",
                value: webusername.unwrap_or_default().to_owned(),
            }
        }
        ConstraintKind::Unique => StoreError::Conflict {
            field: "username",
            value: username.to_owned(),
        },
        ConstraintKind::ForeignKey => {
            StoreError::invalid("domain_id", "domain or customer doesn't exist")
        }
        ConstraintKind::Other => StoreError::Database(error),
    }
}

fn number_write_error(error: sqlx::Error, e164: &str) -> StoreError {
    match constraint_kind(&error) {
        ConstraintKind::Unique => StoreError::Conflict {
            field: "number",
            value: e164.to_owned(),
        },
        ConstraintKind::ForeignKey => {
            StoreError::invalid("subscriber_id", "subscriber doesn't exist")
        }
        ConstraintKind::Other => StoreError::Database(error),
    }
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    uuid: String,
    customer_id: i64,
    domain_id: i64,
    domain: String,
    username: String,
    webusername: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    external_id: Option<String>,
    #[sqlx(try_from = "String")]
    status: SubscriberStatus,
    administrative: bool,
}

impl SubscriberRow {
    fn into_subscriber(self, numbers: Vec<Number>) -> Subscriber {
        let (primary, aliases): (Vec<Number>, Vec<Number>) =
            numbers.into_iter().partition(|n| n.is_primary);
        Subscriber {
            id: self.id,
            uuid: self.uuid,
            customer_id: self.customer_id,
            domain_id: self.domain_id,
            domain: self.domain,
            username: self.username,
            webusername: self.webusername,
            display_name: self.display_name,
            email: self.email,
            external_id: self.external_id,
            status: self.status,
            administrative: self.administrative,
            primary_number: primary.into_iter().next(),
            alias_numbers: aliases,
        }
    }
}

macro_rules! subscriber_select {
    () => {
        "SELECT s.id, s.uuid, s.customer_id, s.domain_id, d.domain, s.username, s.webusername, \
         s.display_name, s.email, s.external_id, s.status, s.administrative \
         FROM subscribers s JOIN domains d ON d.id = s.domain_id "
    };
}

macro_rules! subscriber_where {
    () => {
        "WHERE (? IS NULL OR s.username LIKE ? ESCAPE '!') \
         AND (? IS NULL OR s.webusername = ?) \
         AND (? IS NULL OR d.domain = ?) \
         AND (? IS NULL OR s.domain_id = ?) \
         AND (? IS NULL OR s.customer_id = ?) \
         AND (? IS NULL OR s.status = ?) \
         AND (? IS NULL OR s.external_id = ?) \
         AND (? IS NULL OR s.display_name LIKE ? ESCAPE '!') \
         AND (? IS NULL OR EXISTS (SELECT 1 FROM numbers n WHERE n.subscriber_id = s.id AND n.e164 = ?)) \
         AND (? IS NULL OR EXISTS (SELECT 1 FROM numbers n WHERE n.subscriber_id = s.id AND n.is_primary = 1 AND n.e164 = ?)) \
         AND (? IS NULL OR EXISTS (SELECT 1 FROM numbers n WHERE n.subscriber_id = s.id AND n.is_primary = 0 AND n.e164 = ?)) "
    };
}

/// Binds every filter value twice, matching the `(? IS NULL OR …)` pairs of `subscriber_where!`.
macro_rules! bind_subscriber_filter {
    ($query:expr, $b:expr) => {
        $query
            .bind(&$b.username)
            .bind(&$b.username)
            .bind(&$b.webusername)
            .bind(&$b.webusername)
            .bind(&$b.domain)
            .bind(&$b.domain)
            .bind($b.domain_id)
            .bind($b.domain_id)
            .bind($b.customer_id)
            .bind($b.customer_id)
            .bind($b.status)
            .bind($b.status)
            .bind(&$b.external_id)
            .bind(&$b.external_id)
            .bind(&$b.display_name)
            .bind(&$b.display_name)
            .bind(&$b.number)
            .bind(&$b.number)
            .bind(&$b.primary_number)
            .bind(&$b.primary_number)
            .bind(&$b.alias)
            .bind(&$b.alias)
    };
}

struct SubscriberFilterBinds {
    username: Option<String>,
    webusername: Option<String>,
    domain: Option<String>,
    domain_id: Option<i64>,
    customer_id: Option<i64>,
    status: Option<&'static str>,
    external_id: Option<String>,
    display_name: Option<String>,
    number: Option<String>,
    primary_number: Option<String>,
    alias: Option<String>,
}

impl SubscriberFilterBinds {
    fn new(filter: &SubscriberFilter) -> Self {
        SubscriberFilterBinds {
            username: filter.username.as_deref().map(like_pattern),
            webusername: filter.webusername.clone(),
            domain: filter
                .domain
                .as_deref()
                .map(|d| d.trim().to_ascii_lowercase()),
            domain_id: filter.domain_id,
            customer_id: filter.customer_id,
            status: filter.status.map(SubscriberStatus::as_str),
            external_id: filter.external_id.clone(),
            display_name: filter.display_name.as_deref().map(like_pattern),
            number: filter.number.clone(),
            primary_number: filter.primary_number.clone(),
            alias: filter.alias.clone(),
        }
    }
}

macro_rules! number_select {
    () => {
        "SELECT n.id, n.subscriber_id, n.cc, n.ac, n.sn, n.e164, n.is_primary, n.is_devid FROM numbers n "
    };
}

impl Store {
    async fn subscriber_numbers(&self, subscriber_id: i64) -> StoreResult<Vec<Number>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, Number>(concat!(number_select!(), "WHERE n.subscriber_id = ? ORDER BY n.id"))
                .bind(subscriber_id)
                .fetch_all(pool)
                .await?
        }))
    }

    async fn complete_subscriber(&self, row: SubscriberRow) -> StoreResult<Subscriber> {
        let numbers = self.subscriber_numbers(row.id).await?;
        Ok(row.into_subscriber(numbers))
    }

    /// The realm (domain name) for `domain_id`, or `Invalid { domain_id }`.
    async fn realm_of(&self, domain_id: i64) -> StoreResult<String> {
        use crate::DomainRepository;
        match self.get_domain(domain_id).await {
            Ok(domain) => Ok(domain.domain),
            Err(StoreError::NotFound { .. }) => Err(StoreError::invalid(
                "domain_id",
                format!("Invalid 'domain_id', doesn't exist: {domain_id}"),
            )),
            Err(other) => Err(other),
        }
    }

    async fn require_customer(&self, customer_id: i64) -> StoreResult<()> {
        use crate::CustomerRepository;
        match self.get_customer(customer_id).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound { .. }) => Err(StoreError::invalid(
                "customer_id",
                format!("Invalid 'customer_id', doesn't exist: {customer_id}"),
            )),
            Err(other) => Err(other),
        }
    }
}

impl SubscriberRepository for Store {
    async fn create_subscriber(&self, new: &NewSubscriber) -> StoreResult<Subscriber> {
        check_username("username", &new.username)?;
        check_password("password", &new.password)?;
        if let Some(web) = &new.webusername {
            check_username("webusername", web)?;
        }
        if let Some(web) = &new.webpassword {
            check_password("webpassword", web)?;
        }
        check_optional_text("display_name", &new.display_name, 128)?;
        check_optional_text("email", &new.email, 255)?;
        check_optional_text("external_id", &new.external_id, 255)?;
        let numbers = collect_numbers(&new.primary_number, &new.alias_numbers)?;
        let realm = self.realm_of(new.domain_id).await?;
        self.require_customer(new.customer_id).await?;

        let ha1 = ha1_md5(&new.username, &realm, &new.password);
        let ha1b = ha1_sha256(&new.username, &realm, &new.password);
        let web_hash = match &new.webpassword {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let uuid = uuid::Uuid::new_v4().to_string();

        let id = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id = sqlx::query(
                "INSERT INTO subscribers (uuid, customer_id, domain_id, username, webusername, \
                 ha1_md5, ha1_sha256, webpassword_hash, display_name, email, external_id, status, \
                 administrative) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&uuid)
            .bind(new.customer_id)
            .bind(new.domain_id)
            .bind(&new.username)
            .bind(&new.webusername)
            .bind(&ha1)
            .bind(&ha1b)
            .bind(&web_hash)
            .bind(&new.display_name)
            .bind(&new.email)
            .bind(&new.external_id)
            .bind(new.status.as_str())
            .bind(new.administrative)
            .execute(&mut *tx)
            .await
            .map_err(|e| subscriber_write_error(e, &new.username, new.webusername.as_deref()))?
            .inserted_id();
            for (number, is_primary, is_devid) in &numbers {
                let e164 = number.e164();
                sqlx::query(
                    "INSERT INTO numbers (subscriber_id, cc, ac, sn, e164, is_primary, is_devid) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(&number.cc)
                .bind(&number.ac)
                .bind(&number.sn)
                .bind(&e164)
                .bind(*is_primary)
                .bind(*is_devid)
                .execute(&mut *tx)
                .await
                .map_err(|e| number_write_error(e, &e164))?;
            }
            tx.commit().await?;
            id
        });
        self.get_subscriber(id).await
    }

    async fn get_subscriber(&self, id: i64) -> StoreResult<Subscriber> {
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, SubscriberRow>(concat!(subscriber_select!(), "WHERE s.id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("subscriber", id))?;
        self.complete_subscriber(row).await
    }

    async fn find_subscriber(
        &self,
        username: &str,
        domain: &str,
    ) -> StoreResult<Option<Subscriber>> {
        let domain = domain.trim().to_ascii_lowercase();
        let row = on_pool!(self, pool => {
            sqlx::query_as::<_, SubscriberRow>(concat!(
                subscriber_select!(),
                "WHERE s.username = ? AND d.domain = ?"
            ))
            .bind(username)
            .bind(&domain)
            .fetch_optional(pool)
            .await?
        });
        match row {
            Some(row) => Ok(Some(self.complete_subscriber(row).await?)),
            None => Ok(None),
        }
    }

    async fn list_subscribers(
        &self,
        filter: &SubscriberFilter,
        page: Page,
    ) -> StoreResult<Paged<Subscriber>> {
        let (limit, offset) = page.limit_offset()?;
        let binds = SubscriberFilterBinds::new(filter);
        let (total, rows) = on_pool!(self, pool => {
            let total: i64 = bind_subscriber_filter!(
                sqlx::query_scalar(concat!(
                    "SELECT COUNT(*) FROM subscribers s JOIN domains d ON d.id = s.domain_id ",
                    subscriber_where!()
                )),
                binds
            )
            .fetch_one(pool)
            .await?;
            let rows = bind_subscriber_filter!(
                sqlx::query_as::<_, SubscriberRow>(concat!(
                    subscriber_select!(),
                    subscriber_where!(),
                    "ORDER BY s.id LIMIT ? OFFSET ?"
                )),
                binds
            )
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            (total, rows)
        });
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(self.complete_subscriber(row).await?);
        }
        Ok(Paged {
            items,
            total_count: total.max(0) as u64,
        })
    }

    async fn update_subscriber(
        &self,
        id: i64,
        update: &SubscriberUpdate,
    ) -> StoreResult<Subscriber> {
        let existing = self.get_subscriber(id).await?;
        if update.customer_id != existing.customer_id {
            return Err(StoreError::invalid(
                "customer_id",
                "customer_id can't be changed",
            ));
        }
        check_username("username", &update.username)?;
        if let Some(password) = &update.password {
            check_password("password", password)?;
        }
        if let Some(web) = &update.webusername {
            check_username("webusername", web)?;
        }
        if let Some(web) = &update.webpassword {
            check_password("webpassword", web)?;
        }
        check_optional_text("display_name", &update.display_name, 128)?;
        check_optional_text("email", &update.email, 255)?;
        check_optional_text("external_id", &update.external_id, 255)?;
        let numbers = collect_numbers(&update.primary_number, &update.alias_numbers)?;
        let realm = self.realm_of(update.domain_id).await?;

        // HA1 binds user and realm to the password, so a rename needs the clear password again.
        let (ha1, ha1b) = match &update.password {
            Some(password) => (
                Some(ha1_md5(&update.username, &realm, password)),
                Some(ha1_sha256(&update.username, &realm, password)),
            ),
            None if update.username != existing.username
                || update.domain_id != existing.domain_id =>
            {
                return Err(StoreError::invalid(
                    "password",
                    "required when username or domain change",
                ));
            }
            None => (None, None),
        };
        let web_hash = match &update.webpassword {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };

        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE subscribers SET domain_id = ?, username = ?, webusername = ?, \
                 ha1_md5 = COALESCE(?, ha1_md5), ha1_sha256 = COALESCE(?, ha1_sha256), \
                 webpassword_hash = COALESCE(?, webpassword_hash), display_name = ?, email = ?, \
                 external_id = ?, status = ?, administrative = ? WHERE id = ?",
            )
            .bind(update.domain_id)
            .bind(&update.username)
            .bind(&update.webusername)
            .bind(&ha1)
            .bind(&ha1b)
            .bind(&web_hash)
            .bind(&update.display_name)
            .bind(&update.email)
            .bind(&update.external_id)
            .bind(update.status.as_str())
            .bind(update.administrative)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| subscriber_write_error(e, &update.username, update.webusername.as_deref()))?;
            // Numbers that stay keep their row (and id, which /api/numbers exposes); only
            // dropped ones are deleted and new ones inserted.
            let existing: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, e164 FROM numbers WHERE subscriber_id = ?")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (number_id, e164) in &existing {
                if !numbers.iter().any(|(number, _, _)| number.e164() == *e164) {
                    sqlx::query("DELETE FROM numbers WHERE id = ?")
                        .bind(number_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for (number, is_primary, is_devid) in &numbers {
                let e164 = number.e164();
                if let Some((number_id, _)) = existing.iter().find(|(_, known)| *known == e164) {
                    sqlx::query(
                        "UPDATE numbers SET cc = ?, ac = ?, sn = ?, is_primary = ?, is_devid = ? \
                         WHERE id = ?",
                    )
                    .bind(&number.cc)
                    .bind(&number.ac)
                    .bind(&number.sn)
                    .bind(*is_primary)
                    .bind(*is_devid)
                    .bind(number_id)
                    .execute(&mut *tx)
                    .await?;
                    continue;
                }
                sqlx::query(
                    "INSERT INTO numbers (subscriber_id, cc, ac, sn, e164, is_primary, is_devid) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id)
                .bind(&number.cc)
                .bind(&number.ac)
                .bind(&number.sn)
                .bind(&e164)
                .bind(*is_primary)
                .bind(*is_devid)
                .execute(&mut *tx)
                .await
                .map_err(|e| number_write_error(e, &e164))?;
            }
            tx.commit().await?;
        });
        self.get_subscriber(id).await
    }

    async fn delete_subscriber(&self, id: i64) -> StoreResult<()> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM subscribers WHERE id = ?")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if affected == 0 {
            return Err(StoreError::not_found("subscriber", id));
        }
        Ok(())
    }

    async fn find_sip_credentials(
        &self,
        username: &str,
        domain: &str,
    ) -> StoreResult<Option<SipCredentials>> {
        let domain = domain.trim().to_ascii_lowercase();
        if let Some(reader) = self.direct_reader() {
            // Per-request lookup of the proxy: inline on SQLite files (see direct.rs).
            let row: Option<(i64, String, i64, String, String, String)> =
                reader.read(|connection| {
                    use rusqlite::OptionalExtension;
                    connection
                        .prepare_cached(SIP_CREDENTIALS)?
                        .query_row((username, domain.as_str()), |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                            ))
                        })
                        .optional()
                })?;
            return row
                .map(
                    |(subscriber_id, uuid, customer_id, ha1_md5, ha1_sha256, status)| {
                        Ok(SipCredentials {
                            subscriber_id,
                            uuid,
                            customer_id,
                            ha1_md5,
                            ha1_sha256,
                            status: status.parse()?,
                        })
                    },
                )
                .transpose();
        }
        Ok(on_pool!(self, pool => {
            sqlx::query_as::<_, SipCredentials>(SIP_CREDENTIALS)
                .bind(username)
                .bind(&domain)
                .fetch_optional(pool)
                .await?
        }))
    }

    async fn find_subscriber_by_number(&self, e164: &str) -> StoreResult<Option<Subscriber>> {
        let e164 = e164.trim_start_matches('+');
        let owner: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT subscriber_id FROM numbers WHERE e164 = ?")
                .bind(e164)
                .fetch_optional(pool)
                .await?
        });
        match owner {
            Some(id) => Ok(Some(self.get_subscriber(id).await?)),
            None => Ok(None),
        }
    }

    async fn verify_subscriber_web_password(
        &self,
        login: &str,
        domain: &str,
        password: &str,
    ) -> StoreResult<Option<Subscriber>> {
        let domain = domain.trim().to_ascii_lowercase();
        let found: Option<(i64, Option<String>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT s.id, s.webpassword_hash FROM subscribers s \
                 JOIN domains d ON d.id = s.domain_id WHERE d.domain = ? \
                 AND (s.webusername = ? OR (s.webusername IS NULL AND s.username = ?))",
            )
            .bind(&domain)
            .bind(login)
            .bind(login)
            .fetch_optional(pool)
            .await?
        });
        let Some((id, Some(hash))) = found else {
            spend_verification_time(password).await?;
            return Ok(None);
        };
        if verify_password(password, &hash).await? {
            Ok(Some(self.get_subscriber(id).await?))
        } else {
            Ok(None)
        }
    }

    async fn list_numbers(&self, filter: &NumberFilter, page: Page) -> StoreResult<Paged<Number>> {
        let (limit, offset) = page.limit_offset()?;
        on_pool!(self, pool => {
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM numbers n JOIN subscribers s ON s.id = n.subscriber_id \
                 WHERE (? IS NULL OR n.subscriber_id = ?) AND (? IS NULL OR s.customer_id = ?) \
                 AND (? IS NULL OR n.cc = ?) AND (? IS NULL OR n.ac = ?) AND (? IS NULL OR n.sn = ?) \
                 AND (? IS NULL OR n.is_primary = ?)",
            )
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(filter.customer_id).bind(filter.customer_id)
            .bind(&filter.cc).bind(&filter.cc)
            .bind(&filter.ac).bind(&filter.ac)
            .bind(&filter.sn).bind(&filter.sn)
            .bind(filter.is_primary).bind(filter.is_primary)
            .fetch_one(pool)
            .await?;
            let items = sqlx::query_as::<_, Number>(concat!(
                number_select!(),
                "JOIN subscribers s ON s.id = n.subscriber_id \
                 WHERE (? IS NULL OR n.subscriber_id = ?) AND (? IS NULL OR s.customer_id = ?) \
                 AND (? IS NULL OR n.cc = ?) AND (? IS NULL OR n.ac = ?) AND (? IS NULL OR n.sn = ?) \
                 AND (? IS NULL OR n.is_primary = ?) ORDER BY n.id LIMIT ? OFFSET ?"
            ))
            .bind(filter.subscriber_id).bind(filter.subscriber_id)
            .bind(filter.customer_id).bind(filter.customer_id)
            .bind(&filter.cc).bind(&filter.cc)
            .bind(&filter.ac).bind(&filter.ac)
            .bind(&filter.sn).bind(&filter.sn)
            .bind(filter.is_primary).bind(filter.is_primary)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?;
            Ok(Paged { items, total_count: total.max(0) as u64 })
        })
    }

    async fn get_number(&self, id: i64) -> StoreResult<Number> {
        on_pool!(self, pool => {
            sqlx::query_as::<_, Number>(concat!(number_select!(), "WHERE n.id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or_else(|| StoreError::not_found("number", id))
    }

    async fn update_number(&self, id: i64, update: &NumberUpdate) -> StoreResult<Number> {
        let number = self.get_number(id).await?;
        if number.is_primary && number.subscriber_id != update.subscriber_id {
            return Err(StoreError::invalid(
                "subscriber_id",
                "a primary number cannot move",
            ));
        }
        let result = on_pool!(self, pool => {
            sqlx::query("UPDATE numbers SET subscriber_id = ?, is_devid = ? WHERE id = ?")
                .bind(update.subscriber_id)
                .bind(update.is_devid)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result {
            Ok(_) => self.get_number(id).await,
            Err(e) if constraint_kind(&e) == ConstraintKind::ForeignKey => {
                Err(StoreError::invalid(
                    "subscriber_id",
                    format!(
                        "Invalid 'subscriber_id', doesn't exist: {}",
                        update.subscriber_id
                    ),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_ngcp_rule() {
        for good in ["alice", "a.b", "+43-1_x", "o'neil", "x;y=z,(q)!*~"] {
            check_username("username", good).unwrap();
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "ä", "a@b", "a\u{0}"] {
            assert!(check_username("username", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn e164_parts_are_validated() {
        assert_eq!(E164Number::new("43", "1", "234567").e164(), "431234567");
        E164Number::new("1", "", "5550100")
            .validate("primary_number")
            .unwrap();
        let err = E164Number::new("0", "1", "2")
            .validate("primary_number")
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { field, .. } if field == "primary_number.cc"));
        assert!(
            E164Number::new("43", "12345678", "2")
                .validate("x")
                .is_err()
        );
        assert!(E164Number::new("43", "1", "").validate("x").is_err());
        assert!(E164Number::new("43", "1", "12a").validate("x").is_err());
    }

    #[test]
    fn duplicate_numbers_in_one_request_are_rejected() {
        let primary = Some(E164Number::new("43", "1", "2"));
        let aliases = vec![AliasNumber {
            cc: "43".into(),
            ac: "1".into(),
            sn: "2".into(),
            is_devid: false,
        }];
        assert!(collect_numbers(&primary, &aliases).is_err());
    }
}
