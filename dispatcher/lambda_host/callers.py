"""Who may call the Invoke API: programs on this machine, never a web page.

The Invoke API checks no signature (there are no credentials to check locally), so
listening on loopback would be its only protection, were it not for browsers: a page
from any site, open in a browser on the same machine, can send requests to
``http://127.0.0.1:9001``. Two ways, both refused here:

- a cross-site "simple" request (a ``text/plain`` POST needs no CORS preflight): the
  browser adds ``Origin`` (and ``Sec-Fetch-Site``); programs such as the AWS CLI,
  botocore/aiobotocore or the dispatcher's own Lambda transport never send them.
- DNS rebinding: the page's own host name is made to resolve to 127.0.0.1, so the
  browser treats the host as same-origin; its ``Host`` header is still that name, and
  only loopback names and addresses are accepted (``dispatcher.net.is_loopback``, the
  one rule for the whole project; ``*.localhost`` is among them: RFC 6761 reserves it
  for loopback and browsers resolve it so without asking DNS, so no page can rebind it).

``--host`` with another address is the operator's choice to serve other machines: that
address is accepted too (as an IP literal or the name given), and for a wildcard bind
(``0.0.0.0``, ``::``) any IP-literal ``Host``. A rebinding page can never send an IP
literal as its ``Host``: rebinding needs a name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from dispatcher.net import is_loopback

_BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_name(header: str) -> str | None:
    """The name or address of a ``Host`` header without its port; None if malformed."""
    header = header.strip().lower()
    if header.startswith("["):  # [v6]:port
        end = header.find("]")
        rest = header[end + 1:] if end > 0 else "?"
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return header[1:end]
    name, sep, port = header.rpartition(":")
    if not sep:
        return header or None
    if not port.isdigit() or not name or ":" in name:  # a bare v6 address is invalid
        return None
    return name


class CallerCheck:
    """Decides whether a request may reach the Invoke API (see the module docstring)."""

    def __init__(self, bind: str) -> None:
        bind = bind.strip("[]").lower()
        address = _ip(bind)
        self._wildcard = address is not None and address.is_unspecified
        self._extra = frozenset() if is_loopback(bind) or self._wildcard else {bind}

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why the request is refused, or None if it may proceed."""
        for name in _BROWSER_HEADERS:
            if name in headers:
                return (f"requests from web pages are refused (the request has an {name} "
                        "header): the local Lambda host has no authentication")
        raw = headers.get("Host")
        host = host_name(raw) if raw is not None else None
        if host is not None and (
            is_loopback(host) or host in self._extra or (self._wildcard and _ip(host))
        ):
            return None
        return (f"Host {raw!r} is not a loopback name or address: the local Lambda host "
                "refuses it (DNS rebinding)")


__all__ = ["CallerCheck", "host_name"]
