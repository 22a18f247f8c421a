"""What a workflow file leaves out: default values, and the guesses made from a route's words.

A seed-format file names endpoints only; these fill in what the format leaves to the reader: a method
from the route's verbs, a service from its first segment, query parameters for search and browse pages,
the seed's error mix, think time and user types. ``docs/workflow-format.md`` lists them for users.
"""

from __future__ import annotations

import re

from ..core.dist import UNIFORM, Component, Dist
from ..core.spec import PLACEHOLDER, Param

__all__ = [
    "DEFAULT_ERROR_CODES",
    "DEFAULT_ERROR_RATE",
    "DEFAULT_LATENCY_MS",
    "DEFAULT_LATENCY_SIGMA",
    "DEFAULT_MAX_CALLS",
    "DEFAULT_THINK_TIME",
    "DEFAULT_USER_TYPES",
    "METHODS",
    "default_query",
    "infer_method",
    "infer_service",
]

DEFAULT_MAX_CALLS = 1000
DEFAULT_LATENCY_SIGMA = 0.4
DEFAULT_LATENCY_MS = 100.0
DEFAULT_ERROR_RATE = 0.05  # the seed's 95 % success
DEFAULT_ERROR_CODES: dict[int, float] = {500: 0.4, 503: 0.3, 502: 0.1, 429: 0.1, 404: 0.1}
DEFAULT_USER_TYPES: dict[str, float] = {"premium": 0.3, "free": 0.5, "guest": 0.2}
DEFAULT_THINK_TIME = Dist(  # the seed's: 1-5 s, and 10-30 s "thinking" 20 % of the time
    (
        Component(UNIFORM, 1.0, 5.0, 0.0, (("min", 1.0), ("max", 5.0))),
        Component(UNIFORM, 10.0, 30.0, 0.0, (("min", 10.0), ("max", 30.0))),
    ),
    (0.8, 0.2),
)
SEARCH_TERMS = ("shoes", "laptop", "headphones", "coffee", "backpack", "watch", "jacket", "lamp", "camera", "desk")
CATEGORIES = ("electronics", "home", "fashion", "sports", "books", "toys", "garden", "beauty")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_POST_WORDS = {
    "login",
    "logout",
    "checkout",
    "payment",
    "payments",
    "pay",
    "register",
    "signup",
    "submit",
    "add",
    "create",
    "update",
    "purchase",
    "order",
}
_VERSION_SEGMENT = re.compile(r"^v\d+$")


def infer_method(route: str) -> str:
    """DELETE for delete/remove, POST for the verbs of a form or a purchase, else GET."""
    words = {w.lower() for w in re.split(r"[^A-Za-z]+", route) if w}
    if "delete" in words or "remove" in words:
        return "DELETE"
    return "POST" if words & _POST_WORDS else "GET"


def infer_service(route: str) -> str:
    """The first path segment after ``api``/``rest``/``vN`` (``frontend`` when there is none)."""
    segs = [s for s in route.split("?", maxsplit=1)[0].split("/") if s and not PLACEHOLDER.fullmatch(s)]
    segs = [s for s in segs if s.lower() not in ("api", "rest") and not _VERSION_SEGMENT.match(s)]
    return segs[0].lower() if segs else "frontend"


def default_query(route: str) -> tuple[Param, ...]:
    """Search pages get ``q``; browse, products and catalog pages get ``category`` and ``page``."""
    last = [s for s in route.split("/") if s and not PLACEHOLDER.fullmatch(s)]
    word = last[-1].lower() if last else ""
    if word == "search":
        return (Param("q", "choice", values=SEARCH_TERMS, weights=(1.0,) * len(SEARCH_TERMS)),)
    if word in ("browse", "products", "catalog"):
        return (
            Param("category", "choice", values=CATEGORIES, weights=(1.0,) * len(CATEGORIES)),
            Param("page", "int", 1, 5),
        )
    return ()
