"""Finding the suite's Python factory (``module:factory`` or ``path/to/file.py:factory``) and checking its shape.

Everything that can be checked before a launch is checked when the tool is
defined: the module imports, the attribute exists and is callable, it takes
one argument (the agent's context), and, for a class, it has a ``run`` method
taking no arguments. Each failure says what to change.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigurationError

OPERATION = "run"
HOOKS = ("setup", "teardown")
SHAPE = "a class with __init__(self, context) and async def run(self) (or a plain def run(self))"


def load_factory(spec: str, what: str) -> Callable[[Any], Any]:
    """The callable ``spec`` names, checked to take one argument (and, for a class, to define ``run``)."""
    location, colon, attribute = str(spec).strip().rpartition(":")
    if not colon or not location or not attribute:
        raise ConfigurationError(
            f"{what}: {spec!r} does not name a factory. Write module:factory (my_tools.credits:Deduct) or "
            "path/to/file.py:factory, where the factory takes the agent's context and returns the agent's object."
        )
    module = _import(location, what)
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            defined = sorted(name for name, value in vars(module).items() if callable(value) and name[0] != "_")
            raise ConfigurationError(
                f"{what}: {location} has no attribute {attribute!r}; it defines "
                f"{', '.join(defined) or 'nothing callable'}. Check the spelling after the ':'."
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ConfigurationError(
            f"{what}: {spec} is a {type(factory).__name__}, not a factory: name a class or a function that takes the "
            "agent's context."
        )
    _check_takes_context(factory, spec, what)
    if inspect.isclass(factory):
        check_agent_object(factory, f"{what}: class {spec}", unbound=True)
    return factory


def check_agent_object(target: Any, what: str, *, unbound: bool = False) -> None:
    """``target`` (an agent's object, or its class when ``unbound``) has ``run()`` and well-formed optional hooks."""
    for name in (OPERATION, *HOOKS):
        method = getattr(target, name, None)
        if method is None:
            if name == OPERATION:
                raise ConfigurationError(
                    f"{what} has no {OPERATION}() method: the agent's object needs one, called once per operation: "
                    f"{SHAPE}."
                )
            continue
        if not callable(method):
            raise ConfigurationError(f"{what}: {name} must be a method, got a {type(method).__name__}.")
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            continue  # a builtin without a signature: let the call tell
        try:
            signature.bind(*((None,) if unbound else ()))
        except TypeError:
            shown = f"{name}{_parameters(signature)}"
            raise ConfigurationError(
                f"{what}: {shown} must take no arguments besides self (the context given to the factory has the "
                f"agent, its user and marker, the iteration and the settings): def {name}(self)."
            ) from None


def _check_takes_context(factory: Callable[..., Any], spec: str, what: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None)
    except TypeError:
        raise ConfigurationError(
            f"{what}: the factory {spec} takes {_parameters(signature)}; it must take exactly one argument, the "
            "agent's context: def make(context) or a class whose __init__(self, context)."
        ) from None


def _parameters(signature: inspect.Signature) -> str:
    """``(context, account)``: the parameters as a reader compares them, without annotations."""
    return "(" + ", ".join(str(p.replace(annotation=p.empty)) for p in signature.parameters.values()) + ")"


def _import(location: str, what: str) -> ModuleType:
    if location.endswith(".py"):
        return _import_file(Path(location), what)
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if location == missing or location.startswith(missing + "."):  # the module itself, not one it imports
            raise ConfigurationError(
                f"{what}: there is no module {location!r} on the Python path. Put its folder on the path "
                "(robot --pythonpath DIR), or give the file itself: path/to/file.py:factory."
            ) from None
        raise _import_failed(location, error, what) from None
    except Exception as error:  # noqa: BLE001 - whatever the module raises on import is the user's to fix
        raise _import_failed(location, error, what) from None


def _import_file(path: Path, what: str) -> ModuleType:
    if not path.is_file():
        raise ConfigurationError(
            f"{what}: there is no file {path} (give the path from where robot runs, or ${{CURDIR}})."
        )
    name = f"stampede_user_tools.{path.stem}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{what}: {path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as import does: dataclasses and pickling look it up
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - whatever the module raises on import is the user's to fix
        del sys.modules[name]
        raise _import_failed(str(path), error, what) from None
    return module


def _import_failed(location: str, error: BaseException, what: str) -> ConfigurationError:
    return ConfigurationError(
        f"{what}: importing {location} failed with {type(error).__name__}: {error}. Fix the module (it must import "
        "without errors on its own)."
    )
