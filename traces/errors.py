"""`TraceError`: a trace that cannot be used (its own file so that the reader modules and the
validation layer share it without importing each other)."""

from seqsched.common.errors import UserError


class TraceError(UserError):
    """A trace that cannot be used; the message names the problem and the fix."""
