-- SCIM filters and birthright rules select people by department. Without
-- an index every such filter reads every principal's JSON. The indexed
-- expression is exactly what principal_query.rs renders for a
-- case-insensitive comparison of `department` (a unit test holds them
-- together): SQLite uses an expression index only for the same expression.
CREATE INDEX principals_department ON principals (tenant_id, kind,
    lower(CASE WHEN json_type(attributes, '$.department') = 'text' THEN json_extract(attributes, '$.department') END));
