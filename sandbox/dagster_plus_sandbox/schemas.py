"""The sandbox's two GraphQL schemas (user_api.graphql, agent_api.graphql), built once each."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

from graphql import GraphQLEnumType, GraphQLScalarType, GraphQLSchema, build_schema

ApiName = Literal["user", "agent"]
SCHEMA_FILES: dict[ApiName, str] = {"user": "user_api.graphql", "agent": "agent_api.graphql"}


@lru_cache(maxsize=2)
def schema(api: ApiName) -> GraphQLSchema:
    sdl = resources.files("dagster_plus_sandbox").joinpath(SCHEMA_FILES[api]).read_text()
    built = build_schema(sdl)
    for name in ("GenericScalar", "JSONString"):
        scalar = built.type_map.get(name)
        if isinstance(scalar, GraphQLScalarType):
            # graphql-core keeps these as instance attributes (a scalar's own functions).
            scalar.serialize = _identity  # type: ignore[method-assign]
            scalar.parse_value = _identity  # type: ignore[method-assign]
            scalar.parse_literal = _parse_literal  # type: ignore[method-assign]
    return built


def _identity(value):
    return value


def _parse_literal(node, variables=None):
    from graphql import value_from_ast_untyped

    return value_from_ast_untyped(node, variables)


def enum_values(api: ApiName, name: str) -> tuple[str, ...]:
    """The values of one of the schema's enums (RunStatus, ...), in schema order."""
    enum = schema(api).type_map[name]
    assert isinstance(enum, GraphQLEnumType)
    return tuple(enum.values)
