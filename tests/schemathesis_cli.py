"""`python tests/schemathesis_cli.py ...` = schemathesis' CLI with `ast.parse` serialised.

CPython 3.11.7 keeps the AST builder's recursion depth in interpreter-wide state (gh-106905,
fixed in 3.11.8): two threads building ASTs at once can make one of them fail with
"SystemError: AST constructor recursion depth mismatch". schemathesis' worker threads do
exactly that (hypothesis parses lambdas' source to describe filters), so with `--workers 2`
the tool itself crashed now and then. One lock around `ast.parse` removes the overlap."""

from __future__ import annotations

import ast
import runpy
import threading
from typing import Any

_lock = threading.Lock()
_parse = ast.parse


def _serialised_parse(*args: Any, **kwargs: Any) -> Any:
    with _lock:
        return _parse(*args, **kwargs)


ast.parse = _serialised_parse  # type: ignore[assignment]

if __name__ == "__main__":
    runpy.run_module("schemathesis.cli", run_name="__main__", alter_sys=True)
