"""Generated from service/tables.py by `python -m service.statements`: do not edit."""

# ruff: noqa: E501
from typing import Any

# fmt: off
STATEMENTS: Any = {
    "postgresql": {
        "get": {
            "sql": "SELECT users.id, users.name, users.email, users.created_at \nFROM users \nWHERE users.id = $1::BIGINT",
            "names": [
                "id"
            ],
            "defaults": {}
        },
        "create": {
            "sql": "INSERT INTO users (name, email) VALUES ($1::VARCHAR, $2::VARCHAR) RETURNING users.id, users.name, users.email, users.created_at",
            "names": [
                "name",
                "email"
            ],
            "defaults": {}
        },
        "list": {
            "sql": "SELECT users.id, users.name, users.email, users.created_at \nFROM users \nWHERE users.id > $1::BIGINT ORDER BY users.id \n LIMIT $2",
            "names": [
                "after",
                "limit"
            ],
            "defaults": {}
        },
        "update": {
            "sql": "UPDATE users SET name=coalesce($1::VARCHAR, users.name), email=coalesce($2::VARCHAR, users.email) WHERE users.id = $3::BIGINT RETURNING users.id, users.name, users.email, users.created_at",
            "names": [
                "name",
                "email",
                "id"
            ],
            "defaults": {}
        },
        "delete": {
            "sql": "DELETE FROM users WHERE users.id = $1::BIGINT RETURNING users.id",
            "names": [
                "id"
            ],
            "defaults": {}
        }
    },
    "sqlite": {
        "get": {
            "sql": "SELECT users.id, users.name, users.email, users.created_at \nFROM users \nWHERE users.id = ?",
            "names": [
                "id"
            ],
            "defaults": {}
        },
        "create": {
            "sql": "INSERT INTO users (name, email) VALUES (?, ?) RETURNING id, name, email, created_at",
            "names": [
                "name",
                "email"
            ],
            "defaults": {}
        },
        "list": {
            "sql": "SELECT users.id, users.name, users.email, users.created_at \nFROM users \nWHERE users.id > ? ORDER BY users.id\n LIMIT ? OFFSET ?",
            "names": [
                "after",
                "limit",
                "param_1"
            ],
            "defaults": {
                "param_1": 0
            }
        },
        "update": {
            "sql": "UPDATE users SET name=coalesce(?, users.name), email=coalesce(?, users.email) WHERE users.id = ? RETURNING id, name, email, created_at",
            "names": [
                "name",
                "email",
                "id"
            ],
            "defaults": {}
        },
        "delete": {
            "sql": "DELETE FROM users WHERE users.id = ? RETURNING id",
            "names": [
                "id"
            ],
            "defaults": {}
        }
    }
}
DATETIME_COLUMNS: Any = [
    "created_at"
]
