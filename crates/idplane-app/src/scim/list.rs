//! Listing and searching (RFC 7644 §3.4.2): a SCIM filter compiled into a
//! store predicate (bound parameters, never SQL text), sorting, and
//! `startIndex`/`count` pages with the total number of matches.

use idplane_core::Ctx;
use idplane_core::scim::filter::parse_filter;
use idplane_store::principal_query::{self, Predicate, Sort};
use serde_json::{Value, json};

use super::LIST_RESPONSE;
use super::error::ScimError;
use super::query::{ResourceKind, to_predicate, to_sort};
use super::schema::{MAX_RESULTS, ResourceType};
use crate::{App, AppError};

/// The page size when the client names none.
pub const DEFAULT_COUNT: u64 = 100;

/// A list or search request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub descending: bool,
    /// 1-based; values below 1 count as 1 (RFC 7644 §3.4.2.4).
    pub start_index: Option<i64>,
    /// Negative values count as 0; values above the maximum as the maximum.
    pub count: Option<i64>,
}

impl ListQuery {
    /// The 1-based start and the page size, clamped as RFC 7644 §3.4.2.4 says.
    fn window(&self) -> (i64, u64) {
        let start = self.start_index.unwrap_or(1).max(1);
        let count = self
            .count
            .map_or(DEFAULT_COUNT, |c| u64::try_from(c).unwrap_or(0))
            .min(MAX_RESULTS);
        (start, count)
    }

    /// The store predicate and sort of this query for resources of `rt`.
    fn compile(&self, rt: ResourceType) -> Result<(Predicate, Option<Sort>), ScimError> {
        let kind = match rt {
            ResourceType::User => ResourceKind::User,
            ResourceType::Group => ResourceKind::Group,
        };
        let predicate = match self.filter.as_deref().map(str::trim) {
            None | Some("") => Predicate::True,
            Some(text) => {
                let filter =
                    parse_filter(text).map_err(|e| ScimError::invalid_filter(e.message()))?;
                to_predicate(kind, &filter).map_err(|e| ScimError::invalid_filter(e.to_string()))?
            }
        };
        let sort = self
            .sort_by
            .as_deref()
            .map(|by| to_sort(kind, by, self.descending))
            .transpose()
            .map_err(|e| ScimError::invalid_value(e.to_string()))?;
        Ok((predicate, sort))
    }
}

fn list_response(total: u64, start: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

impl App {
    /// One page of the resources of type `rt` that match the query, as a
    /// `ListResponse` of full representations.
    pub async fn scim_list(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        q: &ListQuery,
    ) -> Result<Value, ScimError> {
        let (predicate, sort) = q.compile(rt)?;
        let (start, count) = q.window();
        let offset = u64::try_from(start - 1).unwrap_or(0);
        let (total, resources) = self
            .scim_page(ctx, rt, &predicate, sort.as_ref(), offset, count)
            .await?;
        Ok(list_response(total, start, resources))
    }

    /// A search at the service root (RFC 7644 §3.4.3): users, then groups.
    /// A filter that names what one type lacks matches none of that type.
    pub async fn scim_search_all(&self, ctx: &Ctx, q: &ListQuery) -> Result<Value, ScimError> {
        let mut compiled = Vec::new();
        let mut refused = None;
        for rt in [ResourceType::User, ResourceType::Group] {
            match q.compile(rt) {
                Ok(c) => compiled.push((rt, c)),
                Err(e) => refused = Some(e),
            }
        }
        if compiled.is_empty() {
            return Err(refused.unwrap_or_else(|| ScimError::invalid_filter("bad filter")));
        }
        let (start, count) = q.window();
        let mut offset = u64::try_from(start - 1).unwrap_or(0);
        let mut total = 0;
        let mut resources = Vec::new();
        for (rt, (predicate, sort)) in compiled {
            let room = count - resources.len() as u64;
            let (n, page) = self
                .scim_page(ctx, rt, &predicate, sort.as_ref(), offset, room)
                .await?;
            offset = offset.saturating_sub(n);
            total += n;
            resources.extend(page);
        }
        Ok(list_response(total, start, resources))
    }

    async fn scim_page(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        predicate: &Predicate,
        sort: Option<&Sort>,
        offset: u64,
        count: u64,
    ) -> Result<(u64, Vec<Value>), ScimError> {
        let mut conn = self.store().read().await.map_err(AppError::from)?;
        let (total, found) = principal_query::query(
            &mut conn,
            ctx.tenant,
            rt.kind(),
            predicate,
            sort,
            offset,
            count,
            ctx.now,
        )
        .await
        .map_err(AppError::from)?;
        let mut resources = Vec::with_capacity(found.len());
        for p in &found {
            resources.push(self.scim_resource(&mut conn, ctx, rt, p).await?);
        }
        Ok((total, resources))
    }
}
