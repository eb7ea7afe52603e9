"""nsfork.Error: what the server (or this client) refused, and why."""

from ._types import ErrorCode


class Error(Exception):
    """A failed request. `code` is an ErrorCode (e.code.name: "UnknownContainer", ...),
    `message` the server's words, `errno` the errno behind it (0 when none)."""

    def __init__(self, code, message, errno=0):
        self.code = ErrorCode(code) if code in ErrorCode._value2member_map_ else code
        self.message = message
        self.errno = errno
        super().__init__(self.code, message, errno)

    def __str__(self):
        # The message names the errno's meaning already ("...: No such file or directory").
        return f"{getattr(self.code, 'name', self.code)}: {self.message}"

    def __reduce__(self):
        return type(self), (self.code, self.message, self.errno)


def protocol_error(message):
    return Error(ErrorCode.Protocol, message)


def disconnected():
    return Error(ErrorCode.Disconnected, "nsfork server closed the connection")
