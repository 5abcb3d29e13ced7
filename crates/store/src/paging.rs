//! Paging of list operations (`page`, `rows` as in the ngcp-panel API).

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult};

/// Which page of a list to return. `page` is 1-based; both must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based page number (ngcp default 1).
    pub page: u32,
    /// Items per page (ngcp default 10).
    pub rows: u32,
}

impl Default for Page {
    fn default() -> Self {
        Page { page: 1, rows: 10 }
    }
}

impl Page {
    /// A page; validated when used.
    pub fn new(page: u32, rows: u32) -> Self {
        Page { page, rows }
    }

    /// `(LIMIT, OFFSET)` for SQL; rejects 0 for either like the ngcp API does (400).
    pub(crate) fn limit_offset(&self) -> StoreResult<(i64, i64)> {
        if self.page == 0 {
            return Err(StoreError::invalid("page", "must be at least 1"));
        }
        if self.rows == 0 {
            return Err(StoreError::invalid("rows", "must be at least 1"));
        }
        let rows = i64::from(self.rows);
        let offset = (i64::from(self.page) - 1) * rows;
        Ok((rows, offset))
    }
}

/// One page of a list plus the number of items matching the filter over all pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The items on this page, in a stable order (by id unless documented otherwise).
    pub items: Vec<T>,
    /// How many items match the filter in total.
    pub total_count: u64,
}

/// Turns an ngcp pattern filter (`*` = any run, `?` = one character) into a SQL `LIKE`
/// pattern escaped with `!` (an escape character both SQLite and MariaDB read literally,
/// unlike the backslash, whose meaning in string literals differs between them).
pub(crate) fn like_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for ch in pattern.chars() {
        match ch {
            '!' | '%' | '_' => {
                out.push('!');
                out.push(ch);
            }
            '*' => out.push('%'),
            '?' => out.push('_'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_page_or_rows_is_invalid() {
        assert!(matches!(
            Page::new(0, 10).limit_offset(),
            Err(StoreError::Invalid { field, .. }) if field == "page"
        ));
        assert!(matches!(
            Page::new(1, 0).limit_offset(),
            Err(StoreError::Invalid { field, .. }) if field == "rows"
        ));
        assert_eq!(Page::new(3, 25).limit_offset().unwrap(), (25, 50));
    }

    #[test]
    fn like_pattern_escapes_sql_wildcards() {
        assert_eq!(like_pattern("al*"), "al%");
        assert_eq!(like_pattern("a?c"), "a_c");
        assert_eq!(like_pattern("100%_x!"), "100!%!_x!!");
    }
}
