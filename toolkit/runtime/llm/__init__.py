"""Model backends behind one async protocol. `load_backend(model_string)` picks one."""

from toolkit.runtime.llm.base import Backend, BackendError, Capabilities
from toolkit.runtime.llm.factory import load_backend, parse_model_string

__all__ = ["Backend", "BackendError", "Capabilities", "load_backend", "parse_model_string"]
