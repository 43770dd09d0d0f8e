"""Each operation's OpenAPI says which tokens it accepts, read from its dependencies.

The dependencies of `platform_common.security` (and a service's own, such as orgs'
permission checks) carry a rule (`documents`); `describe_tokens` walks every route's
dependency tree, keeps the most specific of the "who" rules and every scope or permission
rule, and writes them into the operation: as `x-accepted-tokens` (a list) and as a
**Tokens** line at the end of its description. So the document cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

F = TypeVar("F", bound=Callable[..., Any])
RULE = "__accepted_tokens__"

# "Who" rules, least specific first: an operation states the most specific it has.
ANY_BEARER = (
    "any valid bearer: a user's access token, org-scoped token or personal access token, "
    "or a service token"
)
USER = "a user's access token, org-scoped token or personal access token (services: 403)"
SESSION_USER = (
    "a user's login-session access token; a personal access token or an org-scoped token "
    "gets 403 `insufficient_scope`"
)
ADMIN = "a platform admin's token (a personal access token needs the scope `platform:admin`)"
WHO = (ANY_BEARER, USER, SESSION_USER, ADMIN)
NONE = "none needed"
SERVICE = "a service token with scope"


def service_scope_rule(scope: str) -> str:
    return f"{SERVICE} `{scope}`"


def documents(*rules: str) -> Callable[[F], F]:
    """Mark a dependency with the rules it enforces, for the OpenAPI document (several when
    one dependency does the work of a chain, to save the chain's cost on a hot path)."""

    def mark(dependency: F) -> F:
        setattr(dependency, RULE, rules)
        return dependency

    return mark


def _rules(dependant: Dependant) -> Iterator[str]:
    yield from getattr(dependant.call, RULE, ())
    for sub in dependant.dependencies:
        yield from _rules(sub)


def accepted_tokens(route: APIRoute) -> list[str]:
    found = list(dict.fromkeys(_rules(route.dependant)))
    rest = [rule for rule in found if rule not in WHO]
    # A service scope says who on its own.
    who = [] if any(r.startswith(SERVICE) for r in rest) else [r for r in WHO if r in found]
    if not who and not rest:
        return [NONE]
    return ([who[-1]] if who else []) + rest


def describe_tokens(app: FastAPI, schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or context.path is None:
            continue
        for method in context.methods or ():
            operation = paths.get(context.path, {}).get(method.lower())
            if not isinstance(operation, dict):
                continue
            rules = accepted_tokens(route)
            operation["x-accepted-tokens"] = rules
            line = "**Tokens:** " + "; ".join(rules) + "."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{line}" if description else line
