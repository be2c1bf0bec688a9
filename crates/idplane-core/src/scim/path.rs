//! SCIM PATCH paths (RFC 7644 §3.5.2): `attrPath / valuePath [subAttr]`,
//! e.g. `name.givenName`, `members[value eq "2819c223"]`,
//! `emails[type eq "work"].value`.

use super::filter::{AttrPath, Filter, FilterError, Parser, attr_path};

/// A parsed PATCH path.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    /// The attribute; its `sub_attr` is set for `name.givenName`.
    pub attr: AttrPath,
    /// The value filter of `emails[type eq "work"]`, relative to one element.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `value` in `emails[...].value`.
    pub sub_attr: Option<String>,
}

/// Parses a PATCH operation's `path`, with the same bounds as filters.
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut parser = Parser::new(input)?;
    let (word, at) = parser.word("an attribute path")?;
    let attr = attr_path(word)?;
    if parser.at_end() {
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_attr: None,
        });
    }
    if !parser.at_open_bracket() {
        parser.finish()?;
    }
    let filter = parser.value_filter(&attr, at)?;
    let sub_attr = if parser.at_end() {
        None
    } else {
        let (word, at) = parser.word("`.` and a sub-attribute after `]`")?;
        match word.strip_prefix('.') {
            Some(sub) if attr_path(sub).is_ok_and(|p| p.urn.is_none() && p.sub_attr.is_none()) => {
                Some(sub.to_owned())
            }
            _ => {
                return Err(FilterError::new(format!(
                    "`{word}` after `]` is not `.` and a sub-attribute name (at byte {at})"
                )));
            }
        }
    };
    parser.finish()?;
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_attr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::{CompareOp, parse_filter};
    use serde_json::json;

    #[test]
    fn plain_and_sub_attribute_paths() {
        let p = parse_patch_path("displayName").unwrap();
        assert_eq!(p.attr, AttrPath::new("displayName", None));
        assert_eq!((p.filter, p.sub_attr), (None, None));
        let p = parse_patch_path("name.givenName").unwrap();
        assert_eq!(p.attr, AttrPath::new("name", Some("givenName")));
    }

    #[test]
    fn value_filter_with_and_without_sub_attribute() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr, AttrPath::new("emails", None));
        assert_eq!(p.filter, Some(parse_filter(r#"type eq "work""#).unwrap()));
        assert_eq!(p.sub_attr.as_deref(), Some("value"));

        let p = parse_patch_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#)
            .unwrap();
        assert_eq!(p.attr, AttrPath::new("members", None));
        assert_eq!(
            p.filter,
            Some(Filter::Compare {
                path: AttrPath::new("value", None),
                op: CompareOp::Eq,
                value: json!("2819c223-7f76-453a-919d-413861904646"),
            })
        );
        assert_eq!(p.sub_attr, None);
    }

    #[test]
    fn entra_enterprise_manager_path() {
        let p =
            parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .unwrap();
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr.attr, "manager");
        let p = parse_patch_path(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:addresses[type eq "work"].streetAddress"#,
        )
        .unwrap();
        assert_eq!(p.attr.attr, "addresses");
        assert_eq!(p.sub_attr.as_deref(), Some("streetAddress"));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "",
            "   ",
            "emails[",
            r#"emails[type eq "work""#,
            r#"emails[type eq "work"]value"#,
            r#"emails[type eq "work"].value.x"#,
            r#"emails[type eq "work"].value extra"#,
            r#"emails[type eq "work"][primary eq true]"#,
            r#"name.givenName[type eq "x"]"#,
            "displayName eq",
            "1abc",
            "emails]",
        ] {
            assert!(parse_patch_path(bad).is_err(), "accepted {bad:?}");
        }
        let long = format!("a{}", "b".repeat(5000));
        assert!(
            parse_patch_path(&long)
                .unwrap_err()
                .message()
                .contains("4096")
        );
    }
}
