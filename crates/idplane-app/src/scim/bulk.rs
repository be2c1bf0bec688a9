//! SCIM `/Bulk` (RFC 7644 §3.7): many operations in one request, applied
//! in order, each in its own transaction, with `bulkId` references to
//! resources created earlier in the same request.

use std::collections::HashMap;

use idplane_core::Ctx;
use serde_json::{Value, json};

use super::error::ScimError;
use super::schema::{BULK_MAX_OPERATIONS, ResourceType};
use super::{BULK_REQUEST, BULK_RESPONSE, parse_if_match};
use crate::App;

/// One operation of a bulk request.
struct BulkOp<'a> {
    method: &'a str,
    path: &'a str,
    bulk_id: Option<&'a str>,
    version: Option<&'a str>,
    data: Option<&'a Value>,
}

impl App {
    /// Runs a `BulkRequest`; the answer is the `BulkResponse`.
    pub async fn scim_bulk(&self, ctx: &Ctx, body: &Value) -> Result<Value, ScimError> {
        let schemas = body.get("schemas").and_then(Value::as_array);
        if !schemas.is_some_and(|s| s.iter().any(|s| s == BULK_REQUEST)) {
            return Err(ScimError::invalid_syntax(format!(
                "`schemas` must be [\"{BULK_REQUEST}\"]"
            )));
        }
        let ops = body
            .get("Operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::invalid_syntax("`Operations` must be a list"))?;
        if ops.len() > BULK_MAX_OPERATIONS {
            return Err(ScimError::new(
                413,
                None,
                format!("at most {BULK_MAX_OPERATIONS} operations per bulk request"),
            ));
        }
        let fail_on_errors = match body.get("failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("`failOnErrors` must be a positive integer")
            })?),
        };
        let parsed = ops.iter().map(parse_op).collect::<Result<Vec<_>, _>>()?;
        let mut created: HashMap<String, String> = HashMap::new();
        let mut results = Vec::with_capacity(parsed.len());
        let mut errors = 0;
        for op in &parsed {
            if fail_on_errors.is_some_and(|limit| errors >= limit) {
                break;
            }
            let outcome = self.bulk_one(ctx, op, &created).await;
            let mut result = json!({"method": op.method});
            if let Some(id) = op.bulk_id {
                result["bulkId"] = json!(id);
            }
            match outcome {
                Ok((status, resource)) => {
                    if let Some(resource) = &resource {
                        result["location"] = resource["meta"]["location"].clone();
                        result["version"] = resource["meta"]["version"].clone();
                        if let (Some(bulk_id), Some(id)) = (op.bulk_id, resource["id"].as_str()) {
                            created.insert(bulk_id.to_owned(), id.to_owned());
                        }
                    }
                    result["status"] = json!(status.to_string());
                }
                Err(e) => {
                    errors += 1;
                    result["status"] = json!(e.status.to_string());
                    let mut response = json!({
                        "schemas": [super::ERROR],
                        "status": e.status.to_string(),
                        "detail": e.detail,
                    });
                    if let Some(t) = e.scim_type {
                        response["scimType"] = json!(t);
                    }
                    result["response"] = response;
                }
            }
            results.push(result);
        }
        Ok(json!({"schemas": [BULK_RESPONSE], "Operations": results}))
    }

    async fn bulk_one(
        &self,
        ctx: &Ctx,
        op: &BulkOp<'_>,
        created: &HashMap<String, String>,
    ) -> Result<(u16, Option<Value>), ScimError> {
        let (rt, id) = parse_path(op.path)?;
        let id = id.map(|id| resolve_id(id, created)).transpose()?;
        let data = || {
            op.data
                .map(|d| resolve_refs(d, created))
                .transpose()?
                .ok_or_else(|| ScimError::invalid_syntax(format!("{} needs `data`", op.method)))
        };
        let version = op.version.map(parse_if_match).transpose()?.flatten();
        let need_id = || {
            id.clone().ok_or_else(|| {
                ScimError::invalid_path(format!("{} needs a resource id", op.method))
            })
        };
        match op.method {
            "POST" if id.is_none() => {
                let r = self.scim_create(ctx, rt, &data()?).await?;
                Ok((201, Some(r)))
            }
            "PUT" => {
                let r = self
                    .scim_replace(ctx, rt, &need_id()?, &data()?, version)
                    .await?;
                Ok((200, Some(r)))
            }
            "PATCH" => {
                let r = self
                    .scim_patch(ctx, rt, &need_id()?, &data()?, version)
                    .await?;
                Ok((200, Some(r)))
            }
            "DELETE" => {
                self.scim_delete(ctx, rt, &need_id()?, version).await?;
                Ok((204, None))
            }
            _ => Err(ScimError::invalid_syntax(format!(
                "`{}` on `{}` is not a bulk operation",
                op.method, op.path
            ))),
        }
    }
}

fn parse_op(op: &Value) -> Result<BulkOp<'_>, ScimError> {
    let text = |key: &str| op.get(key).and_then(Value::as_str);
    let method = text("method")
        .filter(|m| ["POST", "PUT", "PATCH", "DELETE"].contains(m))
        .ok_or_else(|| {
            ScimError::invalid_syntax(
                "each operation's `method` must be POST, PUT, PATCH or DELETE",
            )
        })?;
    let path =
        text("path").ok_or_else(|| ScimError::invalid_syntax("each operation needs a `path`"))?;
    let bulk_id = text("bulkId");
    if method == "POST" && bulk_id.is_none() {
        return Err(ScimError::invalid_syntax("a bulk POST needs a `bulkId`"));
    }
    Ok(BulkOp {
        method,
        path,
        bulk_id,
        version: text("version"),
        data: op.get("data"),
    })
}

/// `/Users`, `/Users/{id}`, `/Groups/bulkId:x`.
fn parse_path(path: &str) -> Result<(ResourceType, Option<&str>), ScimError> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ScimError::invalid_path(format!("`{path}` must start with `/`")))?;
    let (segment, id) = match rest.split_once('/') {
        Some((s, id)) if !id.is_empty() && !id.contains('/') => (s, Some(id)),
        Some(_) => return Err(ScimError::invalid_path(format!("bad path `{path}`"))),
        None => (rest, None),
    };
    let rt = ResourceType::from_endpoint(segment)
        .ok_or_else(|| ScimError::invalid_path(format!("no resource type at `{path}`")))?;
    Ok((rt, id))
}

fn resolve_id(text: &str, created: &HashMap<String, String>) -> Result<String, ScimError> {
    match text.strip_prefix("bulkId:") {
        Some(bulk_id) => created.get(bulk_id).cloned().ok_or_else(|| {
            ScimError::new(
                409,
                Some("invalidValue"),
                format!("`bulkId:{bulk_id}` names no resource created earlier in this request"),
            )
        }),
        None => Ok(text.to_owned()),
    }
}

/// `data` with every `bulkId:x` string replaced by the id created for `x`.
fn resolve_refs(data: &Value, created: &HashMap<String, String>) -> Result<Value, ScimError> {
    Ok(match data {
        Value::String(s) if s.starts_with("bulkId:") => Value::String(resolve_id(s, created)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve_refs(v, created))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| Ok((k.clone(), resolve_refs(v, created)?)))
                .collect::<Result<_, ScimError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_references_resolve() {
        assert_eq!(parse_path("/Users").unwrap(), (ResourceType::User, None));
        assert_eq!(
            parse_path("/Groups/abc").unwrap(),
            (ResourceType::Group, Some("abc"))
        );
        assert!(parse_path("Users").is_err());
        assert!(parse_path("/Users/a/b").is_err());
        assert!(parse_path("/Tokens").is_err());
        let created = HashMap::from([("u1".to_owned(), "id-1".to_owned())]);
        let data = json!({"members": [{"value": "bulkId:u1"}, {"value": "plain"}]});
        assert_eq!(
            resolve_refs(&data, &created).unwrap(),
            json!({"members": [{"value": "id-1"}, {"value": "plain"}]})
        );
        assert_eq!(
            resolve_refs(&json!("bulkId:nope"), &created)
                .unwrap_err()
                .status,
            409
        );
    }
}
