//! Conversions between domain values and their portable column forms.

use std::str::FromStr;

use idplane_core::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

pub(crate) fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn opt_millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(millis)
}

pub(crate) fn time(row: &AnyRow, column: &str) -> Result<Timestamp> {
    let ms: i64 = row.try_get(column)?;
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn opt_time(row: &AnyRow, column: &str) -> Result<Option<Timestamp>> {
    let ms: Option<i64> = row.try_get(column)?;
    ms.map(|ms| {
        Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
    })
    .transpose()
}

pub(crate) fn id<T: FromStr>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: `{text}` is not an id")))
}

pub(crate) fn opt_id<T: FromStr>(row: &AnyRow, column: &str) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| {
        text.parse()
            .map_err(|_| StoreError::Corrupt(format!("{column}: `{text}` is not an id")))
    })
    .transpose()
}

pub(crate) fn enum_col<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = row.try_get(column)?;
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("{column}: unknown value `{text}`")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A page request: items after `after` (an id, exclusive), at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

impl Page {
    /// The number of rows to fetch: one more than asked, to know whether
    /// another page follows.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit.clamp(1, 1000)) + 1
    }
}

/// A page of results and whether more follow.
#[derive(Clone, Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub more: bool,
}

impl<T> Paged<T> {
    pub(crate) fn from_rows(mut items: Vec<T>, page: &Page) -> Self {
        let limit = usize::try_from(page.limit.clamp(1, 1000)).unwrap_or(1000);
        let more = items.len() > limit;
        items.truncate(limit);
        Self { items, more }
    }
}

/// A statement built piece by piece, with each backend's positional
/// placeholders (`?` on SQLite, `$n` on PostgreSQL).
///
/// sqlx's `QueryBuilder<Any>` always writes `?`, which PostgreSQL rejects.
pub(crate) struct Sql {
    backend: crate::Backend,
    text: String,
    args: sqlx::any::AnyArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Sql {
    pub(crate) fn new(backend: crate::Backend, text: &str) -> Self {
        Self {
            backend,
            text: text.to_owned(),
            args: sqlx::any::AnyArguments::default(),
            error: None,
        }
    }

    /// The SQL text so far.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        use sqlx::Arguments;
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        // SQLite reads `$N` as a *named* parameter and looks names up
        // linearly: thousands of them in one statement cost quadratic time.
        match self.backend {
            crate::Backend::Sqlite => self.text.push('?'),
            crate::Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.args.len().to_string());
            }
        }
        self
    }

    /// The statement, ready to run, or the first value that failed to encode.
    pub(crate) fn query(
        self,
    ) -> Result<sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>> {
        match self.error {
            Some(e) => Err(StoreError::Database(sqlx::Error::Encode(e))),
            None => Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.text), self.args)),
        }
    }
}

/// One row's values in a multi-row `INSERT`, separated as they are bound.
pub(crate) struct Values<'s> {
    sql: &'s mut Sql,
    first: bool,
}

impl Values<'_> {
    pub(crate) fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'t, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        if !std::mem::take(&mut self.first) {
            self.sql.push(", ");
        }
        self.sql.bind(value);
        self
    }
}

/// Inserts `rows` with as few statements as the bind limits allow:
/// `head` is `INSERT INTO t (columns) VALUES`, `tail` what follows the
/// values (an `ON CONFLICT` clause, or nothing), `row` binds one row.
/// Every statement is a round trip (on SQLite a hand-off to its worker
/// thread), so one statement for many rows is much cheaper than a loop.
pub(crate) async fn insert_rows<T>(
    conn: &mut impl crate::Conn,
    head: &str,
    tail: &str,
    rows: &[T],
    mut row: impl FnMut(&mut Values<'_>, &T) -> Result<()>,
) -> Result<u64> {
    let mut inserted = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = Sql::new(conn.backend(), head);
        push_rows(&mut sql, chunk, &mut row)?;
        sql.push(tail);
        inserted += sql.query()?.execute(conn.conn()).await?.rows_affected();
    }
    Ok(inserted)
}

/// Rows per multi-row `INSERT`: a few dozen binds each stays far below both
/// backends' bind-parameter limits (32,766 and 65,535).
pub(crate) const ROWS_PER_STATEMENT: usize = 500;

/// Appends ` (…), (…)`, one group of values per row, to a multi-row
/// `INSERT`; `row` binds one row.
pub(crate) fn push_rows<T>(
    sql: &mut Sql,
    rows: &[T],
    mut row: impl FnMut(&mut Values<'_>, &T) -> Result<()>,
) -> Result<()> {
    for (i, item) in rows.iter().enumerate() {
        sql.push(if i == 0 { " (" } else { ", (" });
        row(
            &mut Values {
                sql: &mut *sql,
                first: true,
            },
            item,
        )?;
        sql.push(")");
    }
    Ok(())
}
