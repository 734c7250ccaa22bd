"""What every rpc method module shares: the protocol version, the structured error and the
marker of a method that sent its own answer (a binary one, or events first)."""

PROTOCOL_VERSION = 1
MAX_LINE = 1 << 20

SENT = object()  # returned by a method that already sent its answer


class RpcError(Exception):
    """A structured error answer: ``{"code": ..., "message": ...}``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
