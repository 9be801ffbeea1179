"""The one exception every decoding loop raises when its cancel check fires (torch-free, so
that importing request types stays cheap)."""


class Cancelled(Exception):
    """The caller's cancel check fired between two decoding steps."""
