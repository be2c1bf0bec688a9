use serde_json::{Value, json};

use super::*;

fn path(attr: &str, sub: Option<&str>) -> AttrPath {
    AttrPath::new(attr, sub)
}

fn cmp(attr: &str, sub: Option<&str>, op: CompareOp, value: Value) -> Filter {
    Filter::Compare {
        path: path(attr, sub),
        op,
        value,
    }
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

fn err(input: &str) -> String {
    match parse_filter(input) {
        Ok(f) => panic!("accepted {input:?} as {f:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_operator_in_any_case() {
    for (word, op) in [
        ("eq", CompareOp::Eq),
        ("NE", CompareOp::Ne),
        ("Co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("eW", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("GE", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        assert_eq!(
            parse_filter(&format!(r#"userName {word} "bjensen""#)).unwrap(),
            cmp("userName", None, op, json!("bjensen"))
        );
    }
    assert_eq!(
        parse_filter("title PR").unwrap(),
        Filter::Present(path("title", None))
    );
}

#[test]
fn literals() {
    let value = |input: &str| match parse_filter(&format!("a eq {input}")).unwrap() {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(value("true"), json!(true));
    assert_eq!(value("FALSE"), json!(false));
    assert_eq!(value("null"), Value::Null);
    assert_eq!(value("42"), json!(42));
    assert_eq!(value("-1.5e3"), json!(-1500.0));
    assert_eq!(value(r#""""#), json!(""));
    assert_eq!(
        value(r#""quote \" backslash \\ slash \/ tab \t unicode \u00e9 \ud83d\ude00""#),
        json!("quote \" backslash \\ slash / tab \t unicode é 😀")
    );
    assert_eq!(value(r#""O'Malley""#), json!("O'Malley"));
}

#[test]
fn and_binds_tighter_than_or_and_not_tighter_than_and() {
    let a = || cmp("a", None, CompareOp::Eq, json!(1));
    let b = || cmp("b", None, CompareOp::Eq, json!(2));
    let c = || cmp("c", None, CompareOp::Eq, json!(3));
    assert_eq!(
        parse_filter("a eq 1 or b eq 2 and c eq 3").unwrap(),
        or(a(), and(b(), c()))
    );
    assert_eq!(
        parse_filter("a eq 1 and b eq 2 or c eq 3").unwrap(),
        or(and(a(), b()), c())
    );
    assert_eq!(
        parse_filter("(a eq 1 or b eq 2) and c eq 3").unwrap(),
        and(or(a(), b()), c())
    );
    assert_eq!(
        parse_filter("not (a eq 1) and b eq 2").unwrap(),
        and(not(a()), b())
    );
    assert_eq!(
        parse_filter("NOT(a eq 1 or b eq 2)").unwrap(),
        not(or(a(), b()))
    );
    // Left-associative chains.
    assert_eq!(
        parse_filter("a eq 1 or b eq 2 or c eq 3").unwrap(),
        or(or(a(), b()), c())
    );
    assert_eq!(parse_filter("((a eq 1))").unwrap(), a());
}

#[test]
fn an_attribute_called_not_is_still_an_attribute() {
    assert_eq!(
        parse_filter("not pr").unwrap(),
        Filter::Present(path("not", None))
    );
}

#[test]
fn urn_prefixed_and_sub_attribute_paths() {
    let f = parse_filter(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Sales""#,
    )
    .unwrap();
    let Filter::Compare { path, .. } = f else {
        panic!("{f:?}")
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!((path.attr.as_str(), path.sub_attr), ("department", None));

    let f = parse_filter(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "B""#)
        .unwrap();
    let Filter::Compare { path, .. } = f else {
        panic!("{f:?}")
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:core:2.0:User")
    );
    assert_eq!(path.attr, "name");
    assert_eq!(path.sub_attr.as_deref(), Some("givenName"));
    assert_eq!(
        path.to_string(),
        "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"
    );

    assert_eq!(
        parse_filter("meta.lastModified pr").unwrap(),
        Filter::Present(path_of("meta", "lastModified"))
    );
    assert_eq!(
        parse_filter("members.$ref pr").unwrap(),
        Filter::Present(path_of("members", "$ref"))
    );
}

fn path_of(attr: &str, sub: &str) -> AttrPath {
    path(attr, Some(sub))
}

#[test]
fn value_paths() {
    assert_eq!(
        parse_filter(r#"emails[type eq "work" and primary eq true]"#).unwrap(),
        Filter::ValuePath {
            attr: path("emails", None),
            filter: Box::new(and(
                cmp("type", None, CompareOp::Eq, json!("work")),
                cmp("primary", None, CompareOp::Eq, json!(true))
            )),
        }
    );
    assert!(err(r#"emails[type eq "work"].value eq "x""#).contains("unexpected `.value`"));
    assert!(err(r#"emails[type[value eq "x"]]"#).contains("cannot be nested"));
    assert!(err(r#"emails.value[type eq "x"]"#).contains("whole attribute"));
    assert!(err(r#"emails[type eq "work""#).contains("`]`"));
}

/// Every filter of RFC 7644 §3.4.2.2's examples.
#[test]
fn the_rfc_examples_parse() {
    let examples = [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for example in examples {
        parse_filter(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    assert_eq!(
        parse_filter(
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#
        )
        .unwrap(),
        and(
            cmp("userType", None, CompareOp::Ne, json!("Employee")),
            not(or(
                cmp("emails", None, CompareOp::Co, json!("example.com")),
                cmp("emails", Some("value"), CompareOp::Co, json!("example.org"))
            ))
        )
    );
}

/// The shapes Okta and Microsoft Entra ID send.
#[test]
fn provisioning_clients_filters() {
    assert_eq!(
        parse_filter(r#"userName eq "ada@example.com""#).unwrap(),
        cmp("userName", None, CompareOp::Eq, json!("ada@example.com"))
    );
    assert_eq!(
        parse_filter(r#"externalId eq "00u1abcd""#).unwrap(),
        cmp("externalId", None, CompareOp::Eq, json!("00u1abcd"))
    );
    assert_eq!(
        parse_filter(r#"displayName eq "Engineering""#).unwrap(),
        cmp("displayName", None, CompareOp::Eq, json!("Engineering"))
    );
    assert_eq!(
        parse_filter(r#"members[value eq "0190c1b2-aaaa-7bbb-8ccc-000000000001"]"#).unwrap(),
        Filter::ValuePath {
            attr: path("members", None),
            filter: Box::new(cmp(
                "value",
                None,
                CompareOp::Eq,
                json!("0190c1b2-aaaa-7bbb-8ccc-000000000001")
            )),
        }
    );
}

#[test]
fn hostile_input_is_refused_with_a_reason() {
    assert!(err(r#"userName eq "bjensen"#).contains("unterminated string"));
    assert!(err(r#"userName eq "bjensen\""#).contains("unterminated string"));
    assert!(err(&format!(r#"userName eq "{}""#, "x".repeat(5000))).contains("at most 4096"));

    let deep = format!("{}a pr{}", "(".repeat(100), ")".repeat(100));
    assert!(err(&deep).contains("deeper than 16"));
    let deep_not = format!("{}a pr{}", "not (".repeat(17), ")".repeat(17));
    assert!(err(&deep_not).contains("deeper than 16"));
    let ok = format!("{}a pr{}", "(".repeat(16), ")".repeat(16));
    parse_filter(&ok).unwrap();

    let many = vec!["a eq 1"; 200].join(" or ");
    assert!(err(&many).contains("more than 64 comparisons"));
    parse_filter(&vec!["a eq 1"; 64].join(" or ")).unwrap();

    assert!(err(r#"userName eq "x" or 1=1"#).contains("unexpected character `=`"));
    assert!(err(r#"userName eq "x" or 1 eq 1"#).contains("not a valid attribute path"));
    assert!(err("userName eq x").contains("strings must be quoted"));
    assert!(err("userName eq 'x'").contains("unexpected character `'`"));
    assert!(err("userName eq \"a\u{1}b\"").contains("control character U+0001 in a string"));
    assert!(err("userName\teq \"x\"").contains("control character U+0009"));
    assert!(err("userName eq \"x\"\n").contains("control character U+000A"));
    assert!(err(r#"userName eq "x" )"#).contains("unexpected `)`"));
    assert!(err(r#"userName eq "x" garbage"#).contains("unexpected `garbage`"));
    assert!(err(r#"userName eq "x" and"#).contains("at the end of the filter"));
    assert!(err("userName").contains("expected an operator"));
    assert!(err("userName equals \"x\"").contains("`equals` is not an operator"));
    assert!(err("userName eq").contains("expected a value"));
    assert!(err("(userName pr").contains("`)`"));
    assert!(err("").contains("empty"));
    assert!(err("urn:x").contains("not a valid attribute path"));
    assert!(err("a:b eq 1").contains("not a valid attribute path"));
    assert!(err("name.given.family pr").contains("not a valid attribute path"));
    assert!(err("_x pr").contains("not a valid attribute path"));
    assert!(err(r#"userName eq "\x""#).contains("invalid string literal"));
    assert!(err("a eq 01").contains("strings must be quoted"));
    assert!(err("a eq +1").contains("strings must be quoted"));
    assert!(err("a eq \u{e9}").contains("unexpected character `\u{e9}`"));
}

#[test]
fn attr_paths_for_sorting() {
    assert_eq!(
        parse_attr_path("name.familyName").unwrap(),
        path_of("name", "familyName")
    );
    assert!(parse_attr_path("name familyName").is_err());
    assert!(parse_attr_path("").is_err());
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223",
        "userName": "BJensen",
        "name": {"familyName": "O'Malley", "givenName": "Barbara"},
        "title": "Tour Guide",
        "userType": "Employee",
        "active": true,
        "loginCount": 12,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "nickNames": ["Babs", "B"],
        "meta": {"lastModified": "2011-05-13T04:42:34Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Tour Operations",
            "manager": {"value": "26118915"}
        }
    })
}

fn matches(filter: &str) -> bool {
    parse_filter(filter)
        .unwrap()
        .matches(&user(), &|p| p.attr.eq_ignore_ascii_case("id"))
}

#[test]
fn matches_strings_case_insensitively_unless_case_exact() {
    assert!(matches(r#"username eq "bjensen""#));
    assert!(matches(r#"USERNAME sw "bj""#));
    assert!(matches(r#"userName ew "SEN""#));
    assert!(matches(r#"name.familyName co "o'mal""#));
    assert!(!matches(r#"userName ne "bjensen""#));
    assert!(matches(r#"userName gt "a""#));
    assert!(matches(r#"userName lt "c""#));
    assert!(matches(r#"userName ge "bjensen""#));
    assert!(matches(r#"userName le "bjensen""#));
    assert!(matches(r#"id eq "2819c223""#));
    assert!(!matches(r#"id eq "2819C223""#));
}

#[test]
fn matches_numbers_booleans_and_date_times() {
    assert!(matches("loginCount gt 11.5"));
    assert!(matches("loginCount le 12"));
    assert!(!matches("loginCount lt 12"));
    assert!(!matches("loginCount co 1"));
    assert!(matches("active eq true"));
    assert!(matches("active ne false"));
    assert!(!matches("active gt false"));
    assert!(!matches(r#"active eq "true""#));
    assert!(matches(r#"meta.lastModified gt "2011-05-13T04:42:33Z""#));
    assert!(matches(
        r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#
    ));
    assert!(!matches(r#"meta.lastModified lt "2011-05-13T04:42:34Z""#));
}

#[test]
fn matches_multi_valued_and_value_paths() {
    assert!(matches(r#"emails eq "babs@jensen.org""#));
    assert!(matches(r#"emails.value co "example.com""#));
    assert!(matches(r#"emails.type eq "home""#));
    assert!(matches(r#"emails[type eq "work" and primary eq true]"#));
    assert!(!matches(r#"emails[type eq "home" and primary eq true]"#));
    assert!(matches(r#"emails[not (type eq "work")]"#));
    assert!(!matches(r#"emails ne "babs@jensen.org""#));
    assert!(matches(r#"emails ne "nobody@example.com""#));
    assert!(matches(r#"nickNames eq "babs""#));
    assert!(!matches(r#"name eq "Barbara""#));
    assert!(matches(
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#
    ));
}

#[test]
fn matches_presence_absence_and_extensions() {
    assert!(matches("title pr"));
    assert!(matches("name pr"));
    assert!(matches("emails.primary pr"));
    assert!(!matches("nickName pr"));
    assert!(matches("nickName eq null"));
    assert!(!matches("title eq null"));
    assert!(matches("nickName ne \"x\""));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "tour""#
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#
    ));
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen""#
    ));
    assert!(matches(r#"department eq "tour operations""#));
    assert!(matches(r#"manager eq "26118915""#));
    assert!(matches(
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#
    ));
    assert!(matches(
        r#"not (title eq "x") and (userName pr or title pr)"#
    ));
}
