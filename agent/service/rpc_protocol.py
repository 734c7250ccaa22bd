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


def check_params(method: str, handler, params: dict) -> None:
    """RpcError ``bad_params`` naming what is wrong when ``params`` do not fit the
    handler's signature (an unknown name, a missing one), before the handler runs: the
    caller reads which parameter, never Python's TypeError text about a function it
    cannot see. Every method of every module goes through this, so each is as strict."""
    import inspect

    signature = _signature(handler)
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    taken = [n for n, p in signature.parameters.items() if p.kind in named][1:]  # req_id first
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = sorted(set(params) - set(taken))
    if unknown:
        known = ", ".join(taken) or "none"
        raise RpcError("bad_params", f"{method}: unknown parameter(s) {', '.join(unknown)} "
                       f"(it takes: {known})")  # fmt: skip
    missing = [n for n in taken if signature.parameters[n].default is inspect.Parameter.empty
               and n not in params]  # fmt: skip
    if missing:
        raise RpcError("bad_params", f"{method}: missing parameter(s) {', '.join(missing)}")


_SIGNATURES: dict = {}


def _signature(handler):
    import inspect

    key = getattr(handler, "__func__", handler)
    if key not in _SIGNATURES:
        _SIGNATURES[key] = inspect.signature(handler)  # bound: without self
    return _SIGNATURES[key]
