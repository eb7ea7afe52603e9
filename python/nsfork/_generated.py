"""The code flatc generates from protocol/nsfork.fbs (the nsfork.wire subpackage), every module of
it imported here under its own name (_generated.Launch, _generated.ReplyMessage, ...), in one
place so that its absence says what to do."""

import pkgutil
from importlib import import_module

try:
    _package = import_module(__package__ + ".wire")
except ModuleNotFoundError as e:
    if not (e.name or "").startswith(__package__ + ".wire"):
        raise  # flatbuffers itself (Debian: python3-flatbuffers)
    raise ImportError(
        "nsfork.wire, the code `flatc --python` generates from protocol/nsfork.fbs, is missing: "
        "build the nsfork-python target (cmake --build BUILD --target nsfork-python) and put "
        "BUILD/python on PYTHONPATH beside the source tree's python/ (python/README.md)"
    ) from e

for _module in pkgutil.iter_modules(_package.__path__):
    globals()[_module.name] = import_module(f"{_package.__name__}.{_module.name}")
