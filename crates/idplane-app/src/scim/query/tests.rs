use idplane_core::scim::filter::parse_filter;
use idplane_store::principal_query::{
    ElementField, ElementPredicate as E, Field, Op, Operand, Predicate as P, Sort,
};

use super::*;

fn user(filter: &str) -> P {
    to_predicate(ResourceKind::User, &parse_filter(filter).unwrap())
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
}

fn group(filter: &str) -> P {
    to_predicate(ResourceKind::Group, &parse_filter(filter).unwrap())
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
}

fn refused(kind: ResourceKind, filter: &str) -> String {
    match to_predicate(kind, &parse_filter(filter).unwrap()) {
        Ok(p) => panic!("{filter} translated to {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn text(field: Field, op: Op, value: &str, case_exact: bool) -> P {
    P::Compare {
        field,
        op,
        value: Operand::Text(value.into()),
        case_exact,
    }
}

fn not(p: P) -> P {
    P::Not(Box::new(p))
}

fn is_active() -> P {
    text(Field::Status, Op::Eq, "active", true)
}

#[test]
fn columns_with_their_case_rules() {
    assert_eq!(
        user(r#"userName eq "Ada@Example.COM""#),
        text(Field::NameKey, Op::Eq, "ada@example.com", true)
    );
    assert_eq!(
        user(r#"urn:ietf:params:scim:schemas:core:2.0:User:USERNAME sw "J""#),
        text(Field::NameKey, Op::Sw, "j", true)
    );
    assert_eq!(
        user(r#"externalId eq "00u1AB""#),
        text(Field::ExternalId, Op::Eq, "00u1AB", true)
    );
    assert_eq!(user(r#"id eq "x""#), text(Field::Id, Op::Eq, "x", true));
    assert_eq!(
        user(r#"displayName co "Love""#),
        text(Field::DisplayName, Op::Co, "Love", false)
    );
    assert_eq!(
        group(r#"displayName eq "Engineering""#),
        text(Field::NameKey, Op::Eq, "engineering", true)
    );
    assert_eq!(
        user(r#"name.familyName ge "O'Malley""#),
        text(
            Field::Attr(&["name", "familyName"]),
            Op::Ge,
            "O'Malley",
            false
        )
    );
    assert_eq!(
        user(r#"title ew "Guide""#),
        text(Field::Attr(&["title"]), Op::Ew, "Guide", false)
    );
}

#[test]
fn active_and_user_type() {
    assert_eq!(user("active eq true"), is_active());
    assert_eq!(user("active eq false"), not(is_active()));
    assert_eq!(user("active ne true"), not(is_active()));
    assert_eq!(user("active ne false"), is_active());
    assert_eq!(user("active pr"), P::True);
    assert_eq!(
        user(r#"userType eq "Employee""#),
        text(Field::UserType, Op::Eq, "employee", true)
    );
    assert_eq!(
        user(r#"userType ne "contractor""#),
        not(text(Field::UserType, Op::Eq, "contractor", true))
    );
    assert_eq!(user(r#"userType eq "Intern""#), P::False);
    assert_eq!(user("userType pr"), P::Present(Field::UserType));
}

#[test]
fn meta_date_times() {
    let t = "2011-05-13T04:42:34Z".parse().unwrap();
    assert_eq!(
        user(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
        P::Compare {
            field: Field::UpdatedAt,
            op: Op::Gt,
            value: Operand::Time(t),
            case_exact: true
        }
    );
    assert_eq!(
        group(r#"meta.created le "2011-05-13T06:42:34+02:00""#),
        P::Compare {
            field: Field::CreatedAt,
            op: Op::Le,
            value: Operand::Time(t),
            case_exact: true
        }
    );
}

#[test]
fn enterprise_attributes_with_or_without_urn() {
    let dept = text(Field::Attr(&["department"]), Op::Eq, "Sales", false);
    assert_eq!(user(r#"department eq "Sales""#), dept);
    assert_eq!(
        user(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales""#),
        dept
    );
    let manager = text(Field::Attr(&["manager"]), Op::Eq, "26118915", true);
    assert_eq!(user(r#"manager eq "26118915""#), manager);
    assert_eq!(
        user(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#
        ),
        manager
    );
    assert_eq!(user(r#"manager[value eq "26118915"]"#), manager);
    assert_eq!(
        user("employeeNumber pr"),
        P::Present(Field::Attr(&["employeeNumber"]))
    );
    // The enterprise URN does not reach core attributes, nor the other way round.
    assert!(
        refused(
            ResourceKind::User,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#
        )
        .contains("not a filterable attribute")
    );
    assert!(
        refused(
            ResourceKind::User,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:department eq "x""#
        )
        .contains("not a filterable attribute")
    );
}

#[test]
fn multi_valued_attributes() {
    let value = |op, v: &str| P::AnyElement {
        array: "emails",
        element: Box::new(E::Compare {
            field: ElementField("value"),
            op,
            value: Operand::Text(v.into()),
            case_exact: false,
        }),
    };
    assert_eq!(user(r#"emails eq "a@b""#), value(Op::Eq, "a@b"));
    assert_eq!(user(r#"emails.value co "@b""#), value(Op::Co, "@b"));
    assert_eq!(user(r#"emails ne "a@b""#), not(value(Op::Eq, "a@b")));
    assert_eq!(
        user(r#"emails.type eq "work""#),
        P::AnyElement {
            array: "emails",
            element: Box::new(E::Compare {
                field: ElementField("type"),
                op: Op::Eq,
                value: Operand::Text("work".into()),
                case_exact: false,
            }),
        }
    );
    assert_eq!(
        user(r#"emails[type eq "work" and primary eq true]"#),
        P::AnyElement {
            array: "emails",
            element: Box::new(E::And(vec![
                E::Compare {
                    field: ElementField("type"),
                    op: Op::Eq,
                    value: Operand::Text("work".into()),
                    case_exact: false,
                },
                E::Compare {
                    field: ElementField("primary"),
                    op: Op::Eq,
                    value: Operand::Bool(true),
                    case_exact: true,
                },
            ])),
        }
    );
    assert_eq!(user("emails pr"), P::Present(Field::Attr(&["emails"])));
    assert_eq!(
        user("phoneNumbers.value pr"),
        P::AnyElement {
            array: "phoneNumbers",
            element: Box::new(E::Present(ElementField("value"))),
        }
    );
    assert_eq!(
        user(r#"addresses[not (country eq "DE") or postalCode eq null]"#),
        P::AnyElement {
            array: "addresses",
            element: Box::new(E::Or(vec![
                E::Not(Box::new(E::Compare {
                    field: ElementField("country"),
                    op: Op::Eq,
                    value: Operand::Text("DE".into()),
                    case_exact: false,
                })),
                E::Not(Box::new(E::Present(ElementField("postalCode")))),
            ])),
        }
    );
}

#[test]
fn memberships() {
    assert_eq!(
        group(r#"members[value eq "u1"]"#),
        P::HasMember("u1".into())
    );
    assert_eq!(group(r#"members eq "u1""#), P::HasMember("u1".into()));
    assert_eq!(
        group(r#"members.value ne "u1""#),
        not(P::HasMember("u1".into()))
    );
    assert_eq!(user(r#"groups eq "g1""#), P::MemberOf("g1".into()));
    assert_eq!(user(r#"groups.value eq "g1""#), P::MemberOf("g1".into()));
    let e = refused(
        ResourceKind::Group,
        r#"members[value eq "a" and value eq "b"]"#,
    );
    assert!(e.contains("takes one comparison"), "{e}");
    assert!(refused(ResourceKind::Group, r#"members co "u""#).contains("only eq and ne"));
}

#[test]
fn logic_and_null() {
    assert_eq!(
        user(r#"title pr and not (userType eq "Employee" or nickName eq null)"#),
        P::And(vec![
            P::Present(Field::Attr(&["title"])),
            not(P::Or(vec![
                text(Field::UserType, Op::Eq, "employee", true),
                not(P::Present(Field::Attr(&["nickName"]))),
            ])),
        ])
    );
    assert_eq!(user("displayName ne null"), P::Present(Field::DisplayName));
}

#[test]
fn what_the_mapping_cannot_express_is_refused() {
    let u = ResourceKind::User;
    let g = ResourceKind::Group;
    for (kind, filter, needle) in [
        (u, r#"nosuch eq "x""#, "not a filterable attribute"),
        (u, r#"members eq "x""#, "not a filterable attribute"),
        (g, r#"userName eq "x""#, "not a filterable attribute"),
        (u, r#"urn:example:custom:attr eq "x""#, "not a schema"),
        (
            g,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:id eq "x""#,
            "not a schema",
        ),
        (u, "active gt true", "only eq and ne"),
        (u, r#"active eq "true""#, "boolean"),
        (u, r#"meta.created co "x""#, "date-time"),
        (u, r#"meta.created gt "yesterday""#, "RFC 3339"),
        (u, r#"meta.lastModified gt 5"#, "string"),
        (u, "displayName eq 5", "quoted string"),
        (u, r#"userType sw "E""#, "only eq and ne"),
        (u, r#"name eq "x""#, "is complex"),
        (u, r#"name.nosuch eq "x""#, "not a filterable sub-attribute"),
        (u, r#"title.x eq "x""#, "no sub-attributes"),
        (
            u,
            r#"emails[nosuch eq "x"]"#,
            "not a filterable sub-attribute",
        ),
        (u, r#"emails[primary eq "yes"]"#, "boolean"),
        (u, r#"emails.primary co true"#, "only eq and ne"),
        (u, r#"addresses eq "x""#, "is complex"),
        (u, r#"meta pr"#, "not supported"),
        (u, r#"groups pr"#, "not supported"),
        (u, "title gt null", "only eq and ne"),
        (u, r#"title[value eq "x"]"#, "no sub-attributes"),
    ] {
        let e = refused(kind, filter);
        assert!(e.contains(needle), "{filter}: {e}");
    }
}

#[test]
fn sorting() {
    let sort = |kind, by: &str| to_sort(kind, by, false);
    assert_eq!(
        sort(ResourceKind::User, "userName").unwrap(),
        Sort {
            field: Field::NameKey,
            descending: false
        }
    );
    assert_eq!(
        to_sort(ResourceKind::User, "name.familyName", true).unwrap(),
        Sort {
            field: Field::Attr(&["name", "familyName"]),
            descending: true
        }
    );
    assert_eq!(
        sort(ResourceKind::Group, "meta.lastModified")
            .unwrap()
            .field,
        Field::UpdatedAt
    );
    assert_eq!(
        sort(ResourceKind::User, "active").unwrap().field,
        Field::Status
    );
    assert_eq!(
        sort(
            ResourceKind::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        )
        .unwrap()
        .field,
        Field::Attr(&["department"])
    );
    for bad in ["emails", "name", "groups", "nosuch", "userName eq", ""] {
        assert!(sort(ResourceKind::User, bad).is_err(), "{bad}");
    }
}
