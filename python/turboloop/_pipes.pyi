# Types of the pipe half of turboloop.Loop.  connect_read_pipe() and
# connect_write_pipe() are in _network.pyi (they are asyncio's own); this
# module only builds their transports.

__all__ = ("PipeMixin",)

class PipeMixin: ...
