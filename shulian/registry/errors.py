"""Errors the registry API answers with, as Confluent documents them (HTTP status + error_code)."""

from __future__ import annotations

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
SUBJECT_COMPAT_NOT_CONFIGURED = 40408
SUBJECT_MODE_NOT_CONFIGURED = 40409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
INVALID_MODE = 42204
OPERATION_NOT_PERMITTED = 42205
REFERENCE_EXISTS = 42206
STORE_ERROR = 50001
OPERATION_TIMEOUT = 50002


class ApiError(Exception):
    """An answer the registry gives instead of a result: ``{"error_code": .., "message": ..}``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> ApiError:
    return ApiError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> ApiError:
    return ApiError(404, VERSION_NOT_FOUND, f"Version {version} not found.")


def schema_not_found(detail: str = "Schema not found") -> ApiError:
    return ApiError(404, SCHEMA_NOT_FOUND, detail)


def invalid_schema(why: str) -> ApiError:
    return ApiError(422, INVALID_SCHEMA, f"Invalid schema: {why}")


def invalid_version(raw: str) -> ApiError:
    return ApiError(
        422,
        INVALID_VERSION,
        f"The specified version '{raw}' is not a valid version id. Allowed values are between "
        '[1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level() -> ApiError:
    return ApiError(
        422,
        INVALID_COMPATIBILITY_LEVEL,
        "Invalid compatibility level. Valid values are none, backward, forward, full, "
        "backward_transitive, forward_transitive, and full_transitive",
    )


def invalid_mode(raw: object) -> ApiError:
    return ApiError(
        422, INVALID_MODE, f"Invalid mode {raw!r}. Valid values are READWRITE, READONLY, IMPORT"
    )


def not_permitted(why: str) -> ApiError:
    return ApiError(422, OPERATION_NOT_PERMITTED, why)
