"""Users' own classes and functions in whole-model files, as Keras 3 finds them.

A file names its objects by class name (and ``registered_name``
"package>Name"); a name outside fastnn's own registries is taken only from
what the running process offers: the ``custom_objects`` given to
``load_model`` (or a ``custom_object_scope``), or a class or function
registered with ``register_keras_serializable``. Nothing is ever imported
because a file names it.
"""
import contextlib
import threading

_REGISTERED = {}          # "package>name" -> class or function
_SCOPES = threading.local()


def register_keras_serializable(package="Custom", name=None):
    """Decorator: registers a class or function as ``f"{package}>{name}"``
    (``name`` defaults to its ``__name__``), under which files record it."""
    if not isinstance(package, str) or ">" in package:
        raise ValueError(f"package must be a string without '>', got {package!r}")

    def register(obj):
        key = f"{package}>{name or obj.__name__}"
        if key in _REGISTERED and _REGISTERED[key] is not obj:
            raise ValueError(f"{key!r} is already registered to {_REGISTERED[key]!r}")
        _REGISTERED[key] = obj
        obj._registered_name = key
        return obj
    return register


def get_registered_name(obj):
    """The name files record ``obj`` under: "package>Name" when registered, else its ``__name__``."""
    return getattr(obj, "_registered_name", None) or obj.__name__


def get_registered_object(name, custom_objects=None):
    """The object registered or given as ``name`` (a registered "package>Name",
    or a key of ``custom_objects`` or of an active ``custom_object_scope``), or None."""
    for scope in [custom_objects or {}, *reversed(getattr(_SCOPES, "stack", []))]:
        if name in scope:
            return scope[name]
    if name in _REGISTERED:
        return _REGISTERED[name]
    return None


def lookup(class_name, registered_name=None):
    """The user's object for a record: by its registered name, then its class name."""
    for name in (registered_name, class_name):
        if isinstance(name, str):
            obj = get_registered_object(name)
            if obj is not None:
                return obj
    return None


@contextlib.contextmanager
def custom_object_scope(custom_objects):
    """Within the block, the names of ``custom_objects`` ({name: class or function}) resolve to them."""
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict {{name: object}}, got {type(custom_objects).__name__}")
    stack = getattr(_SCOPES, "stack", None)
    if stack is None:
        stack = _SCOPES.stack = []
    stack.append(dict(custom_objects or {}))
    try:
        yield
    finally:
        stack.pop()


CustomObjectScope = custom_object_scope
