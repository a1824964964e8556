"""The one error the bundle reader raises: what is wrong with the bundle, and the fix."""

from __future__ import annotations


class BundleError(RuntimeError):
    """A bundle cannot be used; the message names the problem and the fix."""
