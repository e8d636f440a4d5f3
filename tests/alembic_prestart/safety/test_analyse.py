"""Migration-safety analysis: each rule on its dangerous SQL and its safe twin, opt-outs, and
the real offline output of Alembic split per revision."""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic_prestart.safety.analyse import (
    Finding,
    RenderError,
    analyse,
    render_pending_sql,
    split_offline_sql,
)

from tests.support.revisions import HEAD, add_revision

USERS = {"users": {"id": "bigint", "name": "character varying(100)", "age": "integer"}}


Existing = Collection[str] | Mapping[str, Mapping[str, str]] | None


def lint(sql: str, *, path: Path | None = None, existing: Existing = None) -> list[Finding]:
    files = {"0002": path} if path is not None else {}
    return analyse([("0002", sql)], revision_files=files, existing_tables=existing)


def rules(sql: str, *, path: Path | None = None, existing: Existing = None) -> list[str]:
    return [finding.rule for finding in lint(sql, path=path, existing=existing)]


# (rule, dangerous SQL, its safe twin)
CASES = [
    (
        "create-index-not-concurrently",
        "CREATE INDEX ix_users_age ON users (age);",
        "CREATE INDEX CONCURRENTLY ix_users_age ON users (age);",
    ),
    (
        "add-column-volatile-default",
        "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid() NOT NULL;",
        "ALTER TABLE users ADD COLUMN seen timestamptz DEFAULT now() NOT NULL;",
    ),
    (
        "alter-column-type-rewrites",
        "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
        "ALTER TABLE users ALTER COLUMN name TYPE varchar(200);",
    ),
    (
        "set-not-null-without-check",
        "ALTER TABLE users ALTER COLUMN age SET NOT NULL;",
        "ALTER TABLE users ADD CONSTRAINT age_not_null CHECK (age IS NOT NULL) NOT VALID;"
        "ALTER TABLE users VALIDATE CONSTRAINT age_not_null;"
        "ALTER TABLE users ALTER COLUMN age SET NOT NULL;",
    ),
    (
        "constraint-without-not-valid",
        "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id);",
        "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id) "
        "NOT VALID; ALTER TABLE orders VALIDATE CONSTRAINT fk_user;",
    ),
    (
        "constraint-without-not-valid",
        "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);",
        "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID;",
    ),
    (
        "drop-column",
        "ALTER TABLE users DROP COLUMN age;",
        "ALTER TABLE users ADD COLUMN nickname text;",
    ),
    ("drop-table", "DROP TABLE users;", "CREATE TABLE t (a int); DROP TABLE t;"),
    (
        "rename-column",
        "ALTER TABLE users RENAME COLUMN name TO full_name;",
        "ALTER TABLE users ADD COLUMN full_name text;",
    ),
    (
        "rename-table",
        "ALTER TABLE users RENAME TO customers;",
        "CREATE TABLE draft (a int); ALTER TABLE draft RENAME TO customers;",
    ),
    (
        "concurrently-in-transaction",
        "BEGIN; CREATE INDEX CONCURRENTLY ix_users_age ON users (age); COMMIT;",
        "BEGIN; COMMIT; CREATE INDEX CONCURRENTLY ix_users_age ON users (age); BEGIN; COMMIT;",
    ),
    (
        "unique-constraint-without-index",
        "ALTER TABLE users ADD CONSTRAINT uq_users_name UNIQUE (name);",
        "CREATE UNIQUE INDEX CONCURRENTLY ix_users_name ON users (name);"
        "ALTER TABLE users ADD CONSTRAINT uq_users_name UNIQUE USING INDEX ix_users_name;",
    ),
    (
        "validate-constraint-under-lock",
        "BEGIN; ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users "
        "(id) NOT VALID; ALTER TABLE orders VALIDATE CONSTRAINT fk_user; COMMIT;",
        "BEGIN; ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users "
        "(id) NOT VALID; COMMIT; BEGIN; ALTER TABLE orders VALIDATE CONSTRAINT fk_user; COMMIT;",
    ),
    (
        "add-column-not-null-without-default",
        "ALTER TABLE users ADD COLUMN active boolean NOT NULL;",
        "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;",
    ),
    (
        "drop-default-of-not-null-column",
        "ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;"
        "ALTER TABLE users ALTER COLUMN active DROP DEFAULT;",
        "ALTER TABLE users ADD COLUMN note text DEFAULT '';"
        "ALTER TABLE users ALTER COLUMN note DROP DEFAULT;",
    ),
    (
        "alter-domain-scans-columns",
        "ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 0);",
        "ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 0) NOT VALID;",
    ),
    ("reindex-not-concurrently", "REINDEX TABLE users;", "REINDEX TABLE CONCURRENTLY users;"),
    ("truncate-cascade", "TRUNCATE users CASCADE;", "CREATE TABLE t (a int); TRUNCATE t;"),
    ("truncate-table", "TRUNCATE users;", "CREATE TABLE t (a int); TRUNCATE t;"),
    ("drop-database", "DROP DATABASE app;", "ALTER DATABASE app SET lock_timeout = '5s';"),
    (
        "exclusion-constraint",
        "ALTER TABLE orders ADD CONSTRAINT one_open EXCLUDE USING gist (user_id WITH =);",
        "CREATE TABLE bookings (room int, EXCLUDE USING gist (room WITH =));",
    ),
    (
        "rename-enum-value",
        "ALTER TYPE status RENAME VALUE 'done' TO 'completed';",
        "ALTER TYPE status ADD VALUE 'completed' AFTER 'done';",
    ),
    ("rename-schema", "ALTER SCHEMA billing RENAME TO invoicing;", "CREATE SCHEMA invoicing;"),
    (
        "set-tablespace",
        "ALTER TABLE users SET TABLESPACE fast;",
        "CREATE TABLE archive (a int); ALTER TABLE archive SET TABLESPACE slow;",
    ),
    (
        "set-logged-or-unlogged",
        "ALTER TABLE users SET UNLOGGED;",
        "CREATE UNLOGGED TABLE staging (a int); ALTER TABLE staging SET LOGGED;",
    ),
    ("vacuum-full", "VACUUM FULL users;", "VACUUM (ANALYZE) users;"),
    ("cluster", "CLUSTER users USING users_pkey;", "ALTER TABLE users CLUSTER ON users_pkey;"),
    (
        "refresh-materialized-view-not-concurrently",
        "REFRESH MATERIALIZED VIEW user_stats;",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY user_stats;",
    ),
    (
        "backfill-under-lock",
        "BEGIN; ALTER TABLE users ADD COLUMN nickname text;"
        "UPDATE users SET nickname = name WHERE nickname IS NULL; COMMIT;",
        "BEGIN; ALTER TABLE users ADD COLUMN nickname text;"
        "UPDATE users SET nickname = name WHERE id BETWEEN 1 AND 1000; COMMIT;",
    ),
    (
        "add-json-column",
        "ALTER TABLE users ADD COLUMN properties json;",
        "ALTER TABLE users ADD COLUMN properties jsonb;",
    ),
    (
        "set-schema",
        "ALTER TABLE users SET SCHEMA archive;",
        "CREATE TABLE staging (id bigint); ALTER TABLE staging SET SCHEMA archive;",
    ),
    (
        "drop-schema-cascade",
        "DROP SCHEMA reporting CASCADE;",
        "CREATE SCHEMA scratch; CREATE TABLE scratch.t (id int); DROP SCHEMA scratch CASCADE;",
    ),
    (
        "enum-value-used-before-commit",
        "BEGIN; ALTER TYPE user_status ADD VALUE 'frozen';"
        "UPDATE users SET status = 'frozen' WHERE id = 1; COMMIT;",
        "ALTER TYPE user_status ADD VALUE 'frozen';"
        "UPDATE users SET status = 'frozen' WHERE id = 1;",
    ),
    (
        "add-column-of-constrained-domain",
        "CREATE DOMAIN percentage AS integer CHECK (VALUE BETWEEN 0 AND 100);"
        "ALTER TABLE users ADD COLUMN completion percentage;",
        "CREATE DOMAIN percentage AS integer; ALTER TABLE users ADD COLUMN completion percentage;",
    ),
    (
        "drop-column",
        "DO $$ BEGIN ALTER TABLE users DROP COLUMN age; END $$;",
        "DO $$ BEGIN RAISE NOTICE 'nothing dropped'; END $$;",
    ),
]


@pytest.mark.parametrize(("rule", "dangerous", "safe"), CASES, ids=[c[0] for c in CASES])
def test_rule_flags_the_dangerous_statement_and_not_its_safe_twin(
    rule: str, dangerous: str, safe: str
) -> None:
    """Each rule reports its dangerous SQL once, and nothing for the safe recipe."""
    assert rules(dangerous, existing=USERS | {"orders": {}}) == [rule]
    assert rules(safe, existing=USERS | {"orders": {}}) == []


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN r float DEFAULT random();",
        "ALTER TABLE users ADD COLUMN t timestamptz DEFAULT clock_timestamp();",
        "ALTER TABLE users ADD COLUMN n bigint DEFAULT nextval('users_n_seq');",
        "ALTER TABLE users ADD COLUMN n bigserial;",
        "ALTER TABLE users ADD COLUMN n bigint GENERATED ALWAYS AS (id * 2) STORED;",
    ],
)
def test_volatile_defaults_serials_and_generated_columns_rewrite(sql: str) -> None:
    """Volatile defaults, serial and stored generated columns count as rewrites."""
    assert rules(sql) == ["add-column-volatile-default"]


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE users ADD COLUMN c text DEFAULT 'x';",
        "ALTER TABLE users ADD COLUMN c jsonb DEFAULT '{}'::jsonb NOT NULL;",
        "ALTER TABLE users ADD COLUMN c timestamptz DEFAULT CURRENT_TIMESTAMP;",
        "ALTER TABLE users ADD COLUMN c timestamptz DEFAULT now() + interval '1 day';",
    ],
)
def test_constant_and_stable_defaults_are_fine(sql: str) -> None:
    """Constants and stable functions (now(), CURRENT_TIMESTAMP) need no rewrite since PG 11."""
    assert rules(sql) == []


@pytest.mark.parametrize(
    ("old", "new", "safe"),
    [
        ("character varying(100)", "varchar(200)", True),
        ("character varying(100)", "text", True),
        ("character varying(100)", "varchar", True),
        ("character varying(100)", "varchar(50)", False),
        ("numeric(10,2)", "numeric(12,2)", True),
        ("numeric(10,2)", "numeric(12,3)", False),
        ("timestamp(3) without time zone", "timestamp", True),
        ("timestamp without time zone", "timestamptz", False),
        ("integer", "bigint", False),
        ("text", "varchar(20)", False),
        ("text", "varchar", True),
        ("numeric(10,2)", "numeric", True),
        ("numeric(10,0)", "numeric(12)", True),
        ("character(10)", "char(20)", False),  # bpchar has no length-coercion support function
        ("character(10)", "text", False),  # a function cast (rtrim)
        ("character(10)", "bpchar", True),
        ("cidr", "inet", True),
        ("bit(4)", "varbit", True),
        ("bit(4)", "varbit(8)", False),
        ("bit varying(4)", "varbit(8)", True),
        ("interval(3)", "interval(6)", True),
        ("interval day to second(3)", "interval", True),
        ("interval(6)", "interval(3)", False),
        ("time(3) with time zone", "timetz", True),
        ("citext", "text", True),
        ("json", "jsonb", False),
        ("timestamp without time zone", "timestamp(3)", False),
        ("character varying(20)[]", "text[]", False),
    ],
)
def test_only_known_safe_type_widenings_pass(old: str, new: str, safe: bool) -> None:
    """A type change passes only when PostgreSQL 15 makes it without a rewrite (each pair's
    relfilenode was compared before and after on a real server)."""
    found = rules(f"ALTER TABLE users ALTER COLUMN c TYPE {new};", existing={"users": {"c": old}})
    assert found == ([] if safe else ["alter-column-type-rewrites"])


def test_type_change_with_an_unknown_old_type_is_flagged() -> None:
    """An unknown current type is not assumed safe, with or without USING."""
    assert rules("ALTER TABLE users ALTER COLUMN name TYPE text;") == ["alter-column-type-rewrites"]
    using = "ALTER TABLE users ALTER COLUMN name TYPE text USING name::text;"
    assert rules(using) == ["alter-column-type-rewrites"]


@pytest.mark.parametrize(
    ("using", "safe"),
    [
        ("name::text", True),
        ("name", True),
        ("CAST(users.name AS text)", True),
        ("lower(name)", False),
        ("name::varchar(300)", False),  # a cast to another type is coerced again
        ("age::text", False),
    ],
)
def test_using_that_only_relabels_the_column_passes(using: str, safe: bool) -> None:
    """USING the column itself, or its cast to the new type, is judged as the type change alone
    (PostgreSQL 15: varchar -> text USING v::text keeps the table's relfilenode)."""
    found = rules(f"ALTER TABLE users ALTER COLUMN name TYPE text USING {using};", existing=USERS)
    assert found == ([] if safe else ["alter-column-type-rewrites"])


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id);",
        "BEGIN; ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id); COMMIT;",
        "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id), "
        "ADD COLUMN flag boolean DEFAULT false;",
    ],
)
def test_new_column_with_a_foreign_key_and_no_default_is_not_flagged(sql: str) -> None:
    """A new column is NULL in every row: PostgreSQL 15 validates its REFERENCES without a scan
    (pg_stat_xact_user_tables shows none) under a brief SHARE ROW EXCLUSIVE on `users`."""
    assert rules(sql, existing=USERS | {"orders": {}}) == []


def test_new_column_with_a_foreign_key_and_a_default_is_flagged() -> None:
    """A default fills the new column, so its foreign key is checked against every row."""
    sql = "ALTER TABLE orders ADD COLUMN user_id bigint DEFAULT 1 REFERENCES users (id);"
    assert rules(sql, existing=USERS | {"orders": {}}) == ["constraint-without-not-valid"]


TO_TIMESTAMPTZ = "ALTER TABLE events ALTER COLUMN at TYPE timestamptz;"
EVENTS = {"events": {"at": "timestamp without time zone"}}


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "GMT", "Zulu", "etc/gmt+0"])
def test_timestamp_to_timestamptz_passes_under_a_utc_session(zone: str) -> None:
    """With a zero-offset session TimeZone PostgreSQL 12+ keeps the stored values (no rewrite)."""
    found = analyse(
        [("1", TO_TIMESTAMPTZ)], revision_files={}, existing_tables=EVENTS, time_zone=zone
    )
    assert found == []


@pytest.mark.parametrize("zone", [None, "Europe/Paris", "Europe/London", "Africa/Abidjan"])
def test_timestamp_to_timestamptz_is_flagged_under_any_other_or_unknown_zone(
    zone: str | None,
) -> None:
    """Any zone with an offset or a history of one (or an unknown zone) means a rewrite."""
    found = analyse(
        [("1", TO_TIMESTAMPTZ)], revision_files={}, existing_tables=EVENTS, time_zone=zone
    )
    assert [f.rule for f in found] == ["alter-column-type-rewrites"]


@pytest.mark.parametrize(
    ("sql", "flagged"),
    [
        ("SET TIME ZONE 'UTC'; " + TO_TIMESTAMPTZ, False),
        ("SET timezone = 'Etc/UTC'; " + TO_TIMESTAMPTZ, False),
        ("SET TIME ZONE 'UTC'; RESET timezone; " + TO_TIMESTAMPTZ, True),
        ("BEGIN; SET LOCAL TIME ZONE 'UTC'; " + TO_TIMESTAMPTZ + " COMMIT;", False),
        ("BEGIN; SET LOCAL TIME ZONE 'UTC'; COMMIT; " + TO_TIMESTAMPTZ, True),
        ("SET LOCAL TIME ZONE 'UTC'; " + TO_TIMESTAMPTZ, True),  # no effect outside a block
    ],
)
def test_the_run_s_own_time_zone_settings_are_followed(sql: str, flagged: bool) -> None:
    """SET [LOCAL] TIME ZONE in the pending SQL decides as the database's setting does."""
    assert rules(sql, existing=EVENTS) == (["alter-column-type-rewrites"] if flagged else [])


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN; ALTER TABLE users RENAME TO customers;"
        "CREATE VIEW users AS SELECT * FROM customers; COMMIT;",
        "ALTER TABLE users RENAME TO customers; CREATE VIEW users AS SELECT * FROM customers;",
        "BEGIN; ALTER TABLE users RENAME COLUMN name TO full_name;"
        "ALTER TABLE users RENAME TO users_tmp;"
        "CREATE VIEW users AS SELECT *, full_name AS name FROM users_tmp; COMMIT;",
    ],
)
def test_rename_kept_readable_through_a_view_under_the_old_name_is_not_flagged(sql: str) -> None:
    """A view under the old name, created before the rename commits, keeps old readers working
    (outside a transaction block it must be the very next statement)."""
    assert rules(sql, existing=USERS) == []


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN; ALTER TABLE users RENAME TO customers; COMMIT;"
        "BEGIN; CREATE VIEW users AS SELECT * FROM customers; COMMIT;",
        "ALTER TABLE users RENAME TO customers; SELECT 1;"
        "CREATE VIEW users AS SELECT * FROM customers;",
        "BEGIN; ALTER TABLE users RENAME TO customers;",  # the run ends before any view
    ],
)
def test_rename_without_a_view_in_its_transaction_is_flagged(sql: str) -> None:
    """Readers of the old name break the moment the rename commits without its view."""
    assert rules(sql, existing=USERS) == ["rename-table"]


def test_a_rename_reported_at_commit_belongs_to_its_own_revision(tmp_path: Path) -> None:
    """The finding names the rename's revision and statement, and that revision's opt-out
    silences it, though the COMMIT that reveals it is in a later revision."""
    revisions = [
        ("0002", "BEGIN; ALTER TABLE users RENAME TO customers;"),
        ("0003", "ALTER TABLE customers ADD COLUMN note text; COMMIT;"),
    ]
    (finding,) = analyse(revisions, revision_files={}, existing_tables=USERS)
    assert (finding.revision, finding.rule, finding.table) == ("0002", "rename-table", "users")
    assert finding.statement == "ALTER TABLE users RENAME TO customers"
    opt_out = tmp_path / "0002_rename.py"
    opt_out.write_text("# migration-lint: ignore rename-table -- a view follows in 0004\n")
    assert analyse(revisions, revision_files={"0002": opt_out}, existing_tables=USERS) == []


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE users SET age = 0",
        "UPDATE users SET age = 0 WHERE age IS NULL",
        "UPDATE users SET age = 0 WHERE name = 'x'",
        "UPDATE users SET age = 0 WHERE id > 1000",
        "UPDATE users SET age = 0 WHERE id IN (SELECT id FROM users WHERE age IS NULL)",
        "UPDATE users SET age = 0 WHERE id BETWEEN 1 AND 10 OR age IS NULL",
        "UPDATE users u SET age = s.age FROM stats s WHERE u.id = s.user_id",
        "DELETE FROM users WHERE age IS NULL",
    ],
)
def test_whole_table_backfill_after_ddl_in_the_same_transaction_is_flagged(update: str) -> None:
    """No WHERE, or one that may match every row, backfills the whole table while the
    transaction holds the ALTER's ACCESS EXCLUSIVE lock."""
    sql = f"BEGIN; ALTER TABLE users ADD COLUMN nickname text; {update}; COMMIT;"
    assert rules(sql, existing=USERS) == ["backfill-under-lock"]


@pytest.mark.parametrize(
    "update",
    [
        "UPDATE users SET age = 0 WHERE id BETWEEN 1 AND 1000",
        "UPDATE users SET age = 0 WHERE id >= 1 AND id < 1000 AND age IS NULL",
        "UPDATE users SET age = 0 WHERE 1000 > id AND id >= 1",
        "UPDATE users SET age = 0 WHERE id < 10000",
        "WITH batch AS (SELECT id FROM users WHERE age IS NULL LIMIT 500) "
        "UPDATE users SET age = 0 FROM batch WHERE users.id = batch.id",
        "UPDATE users SET age = 0 WHERE id IN (1, 2, 3)",
        "UPDATE users SET age = 0 WHERE id = ANY(ARRAY[1, 2, 3])",
        "UPDATE users SET age = 0 WHERE id = ANY($1)",
        "UPDATE users SET age = 0 WHERE id = 42",
        "UPDATE users SET age = 0 WHERE account_id = 7 AND age IS NULL",
        "UPDATE users SET age = 0 WHERE id IN (SELECT id FROM users WHERE age IS NULL LIMIT 500)",
        "UPDATE users u SET age = 0 FROM (SELECT id FROM users LIMIT 500) b WHERE u.id = b.id",
        "DELETE FROM users WHERE ctid = ANY(ARRAY(SELECT ctid FROM users LIMIT 500))",
    ],
)
def test_batches_are_not_whole_table_backfills(update: str) -> None:
    """A key range, a list of keys, or a LIMIT-ed subquery bounds the rows: a batch."""
    sql = f"BEGIN; ALTER TABLE users ADD COLUMN nickname text; {update}; COMMIT;"
    assert rules(sql, existing=USERS) == []


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN; ALTER TABLE users ADD COLUMN nickname text; COMMIT;"
        "BEGIN; UPDATE users SET nickname = name; COMMIT;",
        "BEGIN; LOCK TABLE users IN ROW EXCLUSIVE MODE; UPDATE users SET age = 0; COMMIT;",
        "BEGIN; ALTER TABLE orders ADD COLUMN note text; UPDATE users SET age = 0; COMMIT;",
        "BEGIN; CREATE TABLE t (a int); INSERT INTO t VALUES (1); UPDATE t SET a = 2; COMMIT;",
        "UPDATE users SET age = 0;",
    ],
)
def test_backfill_without_a_write_blocking_lock_is_not_flagged(sql: str) -> None:
    """The rule is about a strong lock held through the backfill: none here (another
    transaction, a weak lock, another table, a new table, no transaction block)."""
    assert rules(sql, existing=USERS | {"orders": {}}) == []


def test_backfill_after_lock_table_is_flagged() -> None:
    """LOCK TABLE in a write-blocking mode, then a whole-table UPDATE, holds the lock throughout."""
    sql = "BEGIN; LOCK TABLE users IN SHARE MODE; UPDATE users SET age = 0; COMMIT;"
    (finding,) = lint(sql, existing=USERS)
    assert finding.rule == "backfill-under-lock"
    assert "SHARE lock its LOCK TABLE took" in finding.message


def test_validate_in_a_transaction_that_altered_the_table_is_flagged() -> None:
    """Any earlier strong lock on the table (here ADD COLUMN's) is held through the scan."""
    sql = (
        "BEGIN; ALTER TABLE users ADD COLUMN nickname text;"
        "ALTER TABLE users VALIDATE CONSTRAINT users_age_check; COMMIT;"
    )
    assert rules(sql, existing=USERS) == ["validate-constraint-under-lock"]


def test_domain_validate_is_flagged_unlike_a_table_s() -> None:
    """ALTER DOMAIN ... VALIDATE CONSTRAINT takes SHARE on every table using the domain while
    it scans (pg_locks on PostgreSQL 15), unlike ALTER TABLE's SHARE UPDATE EXCLUSIVE."""
    assert rules("ALTER DOMAIN positive VALIDATE CONSTRAINT positive_check;") == [
        "alter-domain-scans-columns"
    ]
    assert rules("ALTER DOMAIN positive SET NOT NULL;") == ["alter-domain-scans-columns"]
    assert rules("CREATE DOMAIN p AS int; ALTER DOMAIN p ADD CHECK (VALUE > 0);") == []


def test_set_not_null_after_a_check_validated_in_an_earlier_run_is_not_flagged() -> None:
    """VALIDATE of a constraint named for the column, added by an earlier migration, then SET
    NOT NULL: PostgreSQL 12+ uses the check (squawk's cross-migration case)."""
    sql = (
        "ALTER TABLE users VALIDATE CONSTRAINT users_age_not_null;"
        "ALTER TABLE users ALTER COLUMN age SET NOT NULL;"
    )
    assert rules(sql, existing=USERS) == []
    other = sql.replace("ALTER COLUMN age", "ALTER COLUMN name")
    assert rules(other, existing=USERS) == ["set-not-null-without-check"]


@pytest.mark.parametrize(
    ("sql", "table", "lock"),
    [
        ("CREATE INDEX ix ON users (age);", "users", "SHARE"),
        ("ALTER TABLE public.users ADD COLUMN j json;", "public.users", "ACCESS EXCLUSIVE"),
        (
            "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
            "orders",
            "SHARE ROW EXCLUSIVE",
        ),
        ("ALTER TABLE users ADD CONSTRAINT c CHECK (age > 0);", "users", "ACCESS EXCLUSIVE"),
        (
            "BEGIN; LOCK TABLE users; ALTER TABLE users VALIDATE CONSTRAINT c; COMMIT;",
            "users",
            "SHARE UPDATE EXCLUSIVE",
        ),
        (
            "BEGIN; LOCK TABLE users; UPDATE users SET age = 1; COMMIT;",
            "users",
            "ROW EXCLUSIVE",
        ),
        ("REINDEX TABLE users;", "users", "SHARE"),
        ("TRUNCATE app.users;", "app.users", "ACCESS EXCLUSIVE"),
        ("ALTER DOMAIN positive SET NOT NULL;", None, "SHARE"),
        ("ALTER TYPE status RENAME VALUE 'a' TO 'b';", None, None),
    ],
)
def test_each_finding_names_its_table_and_the_lock_the_statement_takes(
    sql: str, table: str | None, lock: str | None
) -> None:
    """The table as the statement names it, and PostgreSQL 15's lock mode for the statement."""
    (finding,) = lint(sql, existing=USERS | {"orders": {}})
    assert (finding.table, finding.lock) == (table, lock)


@pytest.mark.parametrize(("rule", "dangerous", "safe"), CASES, ids=[c[0] for c in CASES])
def test_every_rule_can_be_opted_out_with_a_reason(
    tmp_path: Path, rule: str, dangerous: str, safe: str
) -> None:
    """`# migration-lint: ignore RULE -- reason` silences each rule, the new ones included."""
    path = opt_out_file(tmp_path, f"# migration-lint: ignore {rule} -- reviewed by hand")
    assert rules(dangerous, path=path, existing=USERS | {"orders": {}}) == []


def test_tables_created_in_the_pending_sql_are_not_existing() -> None:
    """Indexes, constraints and changes on a table the pending SQL created are fine."""
    sql = """
        CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));
        CREATE INDEX ix_orders_user ON orders (user_id);
        ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();
        ALTER TABLE orders ADD CONSTRAINT uq_orders_token UNIQUE (token);
        ALTER TABLE orders ALTER COLUMN token SET NOT NULL;
        ALTER TABLE orders DROP COLUMN token;
    """
    assert rules(sql) == []


def test_the_state_carries_over_from_one_revision_to_the_next() -> None:
    """A table created by an earlier pending revision is new in the later ones too."""
    revisions = [("a", "CREATE TABLE t (x int);"), ("b", "CREATE INDEX ix ON t (x);")]
    assert analyse(revisions, revision_files={}) == []


def test_existing_tables_limit_what_counts_as_existing() -> None:
    """With the database's tables given, a table outside them is not judged as existing."""
    assert rules("CREATE INDEX ix ON users (age);", existing={"orders"}) == []
    assert rules("CREATE INDEX ix ON users (age);", existing={"users"}) == [
        "create-index-not-concurrently"
    ]


def test_unparsable_statement_is_a_finding_and_the_rest_is_still_checked() -> None:
    """A statement PostgreSQL's grammar rejects is reported, never a crash."""
    sql = "ALTER TABLE users ADD COLUMN;\nCREATE INDEX ix ON users (age);"
    assert rules(sql) == ["unparsable-statement", "create-index-not-concurrently"]
    assert rules("SELECT 'unterminated") == ["unparsable-statement"]
    assert rules("") == []


def opt_out_file(tmp_path: Path, comment: str) -> Path:
    path = tmp_path / "0002_add_index.py"
    path.write_text(
        f'"""add an index"""\n{comment}\nrevision = "0002"\n'
        'NOTE = "# migration-lint: ignore drop-column -- a string, not a comment"\n'
    )
    return path


def test_opt_out_comment_with_a_reason_silences_its_rule(tmp_path: Path) -> None:
    """`# migration-lint: ignore RULE -- reason` silences that rule for the revision only."""
    path = opt_out_file(
        tmp_path, "# migration-lint: ignore create-index-not-concurrently -- under 1k rows"
    )
    sql = "CREATE INDEX ix ON users (age); ALTER TABLE users DROP COLUMN age;"
    assert rules(sql, path=path) == ["drop-column"]  # the string literal silences nothing


def test_opt_out_without_a_reason_does_not_silence(tmp_path: Path) -> None:
    """An opt-out with no reason is itself reported, and the rule still fires."""
    path = opt_out_file(tmp_path, "# migration-lint: ignore create-index-not-concurrently")
    found = lint("CREATE INDEX ix ON users (age);", path=path)
    assert [f.rule for f in found] == ["ignore-without-reason", "create-index-not-concurrently"]
    assert "line 2" in found[0].statement


def test_opt_out_of_an_unknown_rule_is_reported(tmp_path: Path) -> None:
    """A misspelt rule name in an opt-out is reported rather than silently ignored."""
    path = opt_out_file(tmp_path, "# migration-lint: ignore create-index -- tiny table")
    assert rules("CREATE INDEX ix ON users (age);", path=path) == [
        "ignore-unknown-rule",
        "create-index-not-concurrently",
    ]


def test_finding_line_names_revision_file_rule_message_and_statement(tmp_path: Path) -> None:
    """One log line: revision (file): rule: message: statement, on one line, truncated."""
    long_sql = "CREATE INDEX ix ON users (\n" + ", ".join(f"c{i}" for i in range(60)) + ");"
    (finding,) = lint(long_sql, path=tmp_path / "0002_x.py")
    assert finding.line().startswith("0002 (0002_x.py): create-index-not-concurrently: ")
    assert "\n" not in finding.line()
    assert len(finding.statement) <= 120 and finding.statement.endswith("…")


def render(project: Path, current: tuple[str, ...]) -> str:
    return render_pending_sql(
        python=sys.executable,
        alembic_ini=project / "alembic.ini",
        cwd=project,
        env=dict(os.environ, DATABASE_URL="postgresql://postgres@127.0.0.1/x"),
        current=current,
        timeout=120,
    )


@pytest.mark.slow  # renders offline in an Alembic child
def test_real_offline_output_is_split_per_revision_and_judged(project_copy: Path) -> None:
    """Alembic's real offline SQL: each revision's statements, and its dangers by file."""
    files = {}
    files["0002"] = add_revision(
        project_copy,
        "0002",
        HEAD,
        """
        op.add_column("users", sa.Column("age", sa.Integer(), nullable=True))
        op.create_index("ix_users_age", "users", ["age"])
        """,
    )
    files["0003"] = add_revision(
        project_copy,
        "0003",
        "0002",
        """
        with op.get_context().autocommit_block():
            op.create_index("ix_users_name", "users", ["name"], postgresql_concurrently=True)
        op.drop_column("users", "age")
        op.alter_column("users", "email", type_=sa.Integer(), postgresql_using="0")
        """,
    )
    revisions = split_offline_sql(render(project_copy, (HEAD,)))
    assert [revision for revision, _sql in revisions] == ["0002", "0003"]
    assert revisions[0][1].startswith("BEGIN;") and revisions[0][1].endswith("COMMIT;")
    assert "CREATE INDEX ix_users_age" in revisions[0][1]
    assert "DROP COLUMN age" in revisions[1][1] and "ix_users_age" not in revisions[1][1]

    found = [(f.revision, f.path, f.rule) for f in analyse(revisions, revision_files=files)]
    assert found == [
        ("0002", files["0002"], "create-index-not-concurrently"),
        ("0003", files["0003"], "drop-column"),
        ("0003", files["0003"], "alter-column-type-rewrites"),
    ]

    # From an empty database every table is new: nothing to flag.
    from_scratch = split_offline_sql(render(project_copy, ()))
    assert [revision for revision, _sql in from_scratch][-3:] == [HEAD, "0002", "0003"]
    assert analyse(from_scratch, revision_files=files) == []


@pytest.mark.slow  # renders offline in an Alembic child
def test_concurrent_index_outside_autocommit_block_is_in_a_transaction(
    project_copy: Path,
) -> None:
    """postgresql_concurrently=True without autocommit_block() runs inside the transaction."""
    path = add_revision(
        project_copy,
        "0002",
        HEAD,
        'op.create_index("ix_users_name", "users", ["name"], postgresql_concurrently=True)',
    )
    revisions = split_offline_sql(render(project_copy, (HEAD,)))
    found = analyse(revisions, revision_files={"0002": path})
    assert [f.rule for f in found] == ["concurrently-in-transaction"]


@pytest.mark.slow  # renders offline in an Alembic child
def test_render_failure_and_several_heads_raise_one_line_errors(project_copy: Path) -> None:
    """A failed render, or several current heads, is a RenderError with a one-line message."""
    with pytest.raises(RenderError) as failed:
        render(project_copy, ("nope",))
    assert "\n" not in str(failed.value) and "nope" in str(failed.value)
    with pytest.raises(RenderError, match="several current heads"):
        render(project_copy, ("0002a", "0002b"))


CORPUS = Path(__file__).parent / "corpus" / "cases.yaml"


def corpus_findings(case: dict[str, Any]) -> list[Finding]:
    existing: Existing = None
    if "columns" in case:
        existing = case["columns"]
    elif not case["existing"]:
        existing = {}
    return analyse(
        [(case["id"], case["sql"])],
        revision_files={},
        existing_tables=existing,
        time_zone=case.get("time_zone"),
    )


def test_labelled_corpus_recall_and_precision_are_at_least_95_percent() -> None:
    """Over the labelled corpus the rules find 95% of the unsafe cases, and 95% of what they
    flag is unsafe (run with -s to see the figures and the misjudged cases)."""
    cases = yaml.safe_load(CORPUS.read_text())
    assert len({case["id"] for case in cases}) == len(cases) >= 150
    assert {case["label"] for case in cases} == {"safe", "unsafe"}
    flagged = {case["id"] for case in cases if corpus_findings(case)}
    unsafe = {case["id"] for case in cases if case["label"] == "unsafe"}
    recall = len(flagged & unsafe) / len(unsafe)
    precision = len(flagged & unsafe) / len(flagged)
    print(
        f"\nsafety corpus: {len(cases)} cases ({len(unsafe)} unsafe), recall {recall:.3f}, "
        f"precision {precision:.3f}; missed: {sorted(unsafe - flagged)}; "
        f"false alarms: {sorted(flagged - unsafe)}"
    )
    assert recall >= 0.95 and precision >= 0.95


def test_a_column_of_a_constrained_domain_the_database_has_rewrites() -> None:
    """The database's own constrained domains count, as the run's do; a plain one does not."""
    sql = "ALTER TABLE users ADD COLUMN completion percentage;"
    found = analyse(
        [("0002", sql)], revision_files={}, existing_tables=None, constrained_domains=["percentage"]
    )
    assert [finding.rule for finding in found] == ["add-column-of-constrained-domain"]
    assert analyse([("0002", sql)], revision_files={}, existing_tables=None) == []
