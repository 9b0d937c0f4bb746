"""Kubernetes name rules: DNS-1123 labels and subdomains, label keys and label values.

One owner for every name check: the built-in schema (``target`` and ``namespace`` are labels), the
go-compat schema (``metadata.name``/``metadata.namespace`` are subdomains, ``metadata.labels`` as in
Kubernetes) and the built-in porch (its package path is made of two labels) all call these.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN_PART = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"{_SUBDOMAIN_PART}(?:\.{_SUBDOMAIN_PART})*")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")

LABEL_RULE = "a-z, 0-9 and '-', alphanumeric at both ends, at most 63 characters"
SUBDOMAIN_RULE = "a-z, 0-9, '-' and '.', alphanumeric at both ends of each part, at most 253 characters"


def is_dns1123_label(value: str) -> bool:
    """True for a DNS-1123 label (a Kubernetes namespace name; safe as one directory name)."""
    return _LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """True for a DNS-1123 subdomain: dot-separated labels, at most 253 characters."""
    return len(value) <= 253 and _SUBDOMAIN.fullmatch(value) is not None


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key (``[prefix/]name``), or ``None`` when it is one."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return f"the prefix {prefix!r} is not a DNS-1123 subdomain ({SUBDOMAIN_RULE})"
    if _QUALIFIED_NAME.fullmatch(name) is None:
        return (
            f"the name {name!r} must be 1 to 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', "
            "alphanumeric at both ends"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a Kubernetes label value (empty is allowed), or ``None`` when it is one."""
    if value == "" or _QUALIFIED_NAME.fullmatch(value) is not None:
        return None
    return "must be empty or 1 to 63 characters of A-Z, a-z, 0-9, '-', '_' and '.', alphanumeric at both ends"
