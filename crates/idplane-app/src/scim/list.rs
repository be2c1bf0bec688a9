//! Listing and searching (RFC 7644 §3.4.2): a SCIM filter compiled into a
//! store predicate (bound parameters, never SQL text), sorting, and
//! `startIndex`/`count` pages with the total number of matches.

use idplane_core::Ctx;
use idplane_core::scim::filter::parse_filter;
use idplane_store::principal_query::{self, Predicate};
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

impl App {
    /// One page of the resources of type `rt` that match the query, as a
    /// `ListResponse` of full representations.
    pub async fn scim_list(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        q: &ListQuery,
    ) -> Result<Value, ScimError> {
        let kind = match rt {
            ResourceType::User => ResourceKind::User,
            ResourceType::Group => ResourceKind::Group,
        };
        let predicate = match q.filter.as_deref().map(str::trim) {
            None | Some("") => Predicate::True,
            Some(text) => {
                let filter =
                    parse_filter(text).map_err(|e| ScimError::invalid_filter(e.message()))?;
                to_predicate(kind, &filter).map_err(|e| ScimError::invalid_filter(e.to_string()))?
            }
        };
        let sort = q
            .sort_by
            .as_deref()
            .map(|by| to_sort(kind, by, q.descending))
            .transpose()
            .map_err(|e| ScimError::invalid_value(e.to_string()))?;
        let start = q.start_index.unwrap_or(1).max(1);
        let count = q
            .count
            .map_or(DEFAULT_COUNT, |c| u64::try_from(c).unwrap_or(0))
            .min(MAX_RESULTS);
        let offset = u64::try_from(start - 1).unwrap_or(0);
        let mut conn = self.store().read().await.map_err(AppError::from)?;
        let (total, found) = principal_query::query(
            &mut conn,
            ctx.tenant,
            rt.kind(),
            &predicate,
            sort.as_ref(),
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
        Ok(json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }))
    }
}
