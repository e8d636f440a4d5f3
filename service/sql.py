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
        "delete": {
            "sql": "DELETE FROM users WHERE users.id = $1::BIGINT RETURNING users.id",
            "names": [
                "id"
            ],
            "defaults": {}
        },
        "update:name": {
            "sql": "UPDATE users SET name=$1::VARCHAR WHERE users.id = $2::BIGINT RETURNING users.id, users.name, users.email, users.created_at",
            "names": [
                "name",
                "id"
            ],
            "defaults": {}
        },
        "update:email": {
            "sql": "UPDATE users SET email=$1::VARCHAR WHERE users.id = $2::BIGINT RETURNING users.id, users.name, users.email, users.created_at",
            "names": [
                "email",
                "id"
            ],
            "defaults": {}
        },
        "update:email,name": {
            "sql": "UPDATE users SET name=$1::VARCHAR, email=$2::VARCHAR WHERE users.id = $3::BIGINT RETURNING users.id, users.name, users.email, users.created_at",
            "names": [
                "name",
                "email",
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
        "delete": {
            "sql": "DELETE FROM users WHERE users.id = ? RETURNING id",
            "names": [
                "id"
            ],
            "defaults": {}
        },
        "update:name": {
            "sql": "UPDATE users SET name=? WHERE users.id = ? RETURNING id, name, email, created_at",
            "names": [
                "name",
                "id"
            ],
            "defaults": {}
        },
        "update:email": {
            "sql": "UPDATE users SET email=? WHERE users.id = ? RETURNING id, name, email, created_at",
            "names": [
                "email",
                "id"
            ],
            "defaults": {}
        },
        "update:email,name": {
            "sql": "UPDATE users SET name=?, email=? WHERE users.id = ? RETURNING id, name, email, created_at",
            "names": [
                "name",
                "email",
                "id"
            ],
            "defaults": {}
        }
    }
}
DATETIME_COLUMNS: Any = [
    "created_at"
]
