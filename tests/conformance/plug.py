"""Building the test classes the harness runs out of CPython's own, at run
time, by subclassing them: nothing of CPython's suite is copied.

Types phase: CPython parameterizes its Task/Future tests with class
attributes (``Task = tasks._CTask``, ``cls = futures._CFuture``), with
methods that name the C types (``_new_future``, ``new_task``, ``factory``,
``setUp`` patching ``asyncio.Task``), and with ``add_subclass_tests`` wrapping
the types in subclasses.  For every test class that refers to asyncio's C
Task or C Future in any of these ways, the harness makes a subclass in which
the C Task is the target's Task and the C Future the target's Future:
attributes are mapped, methods are re-created over a view of their module's
globals in which ``tasks._CTask`` and ``futures._CFuture`` are the target's
types, and ``add_subclass_tests`` is applied again.  Whatever else those
classes set (``all_tasks``, ``current_task``, ``_register_task`` ...) stays:
asyncio's C bookkeeping functions are the ones a foreign Task feeds through
``asyncio.tasks._register_task`` and friends.

Loops phase: classes that pick a loop implementation in
``create_event_loop()`` / ``new_loop()`` (EPollEventLoopTests,
SelectorStartServerTests, ...) are replaced, per mixin combination, by one
TurboLoop subclass whose method returns a target loop.
"""

import inspect
import re
import types
import unittest

from . import tables

_C_TYPE_NAMES = frozenset({"_CTask", "_CFuture"})


def module_classes(mod):
    """The TestCase classes defined in `mod`, in definition order."""
    return [obj for obj in vars(mod).values()
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase)
            and obj.__module__ == mod.__name__]


def _code_names(code):
    # Attribute and global names, plus string constants for getattr(tasks,
    # "_CTask") spellings.
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
        elif isinstance(const, str):
            names.add(const)
    return names


def _unwrap(value):
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    return value


def _is_subclass_wrapper(value):
    # test_tasks.add_subclass_tests() wraps a Task or Future class in a local
    # subclass that counts add_done_callback calls; its last base is the type
    # it wraps.
    return isinstance(value, type) and "add_subclass_tests.<locals>." in value.__qualname__


class _ModuleView:
    """A module as seen by re-created test methods: some attributes replaced,
    every other read, write and delete passed to the real module (setUp
    methods assign asyncio.Task and friends, and that must stick)."""

    def __init__(self, real, overrides):
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "_overrides", overrides)

    def __getattr__(self, name):
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        return getattr(object.__getattribute__(self, "_real"), name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_real"), name, value)

    def __delattr__(self, name):
        delattr(object.__getattribute__(self, "_real"), name)

    def __repr__(self):
        return f"<view of {object.__getattribute__(self, '_real')!r}>"


class Rebinder:
    """Re-creates functions over a copy of their globals in which some
    modules are _ModuleViews."""

    def __init__(self, views):
        # views: {real module: {attribute: replacement}}; a replacement may
        # itself be a module listed here, which then appears as its view.
        self._views = {}
        for module, overrides in views.items():
            self._views[id(module)] = _ModuleView(module, dict(overrides))
        for view in self._views.values():
            overrides = object.__getattribute__(view, "_overrides")
            for name, value in overrides.items():
                if id(value) in self._views:
                    overrides[name] = self._views[id(value)]
        self._globals = {}

    def rebind(self, func):
        key = id(func.__globals__)
        if key not in self._globals:
            g = dict(func.__globals__)
            for name, value in g.items():
                if id(value) in self._views:
                    g[name] = self._views[id(value)]
            self._globals[key] = g
        new = types.FunctionType(func.__code__, self._globals[key], func.__name__,
                                 func.__defaults__, func.__closure__)
        new.__kwdefaults__ = func.__kwdefaults__
        new.__dict__.update(func.__dict__)
        new.__qualname__ = func.__qualname__
        new.__doc__ = func.__doc__
        new.__module__ = func.__module__
        return new


class TypeMapper:
    """Maps asyncio's C Task/Future, and the things built on them, to the
    target's types."""

    def __init__(self, target):
        import asyncio
        from asyncio import futures, tasks

        self.target = target
        self._types = {}
        c_task = getattr(tasks, "_CTask", None)
        c_future = getattr(futures, "_CFuture", None)
        if c_task is not None:
            self._types[c_task] = target.Task
        if c_future is not None:
            self._types[c_future] = target.Future
        self._clones = {}
        # The same code over globals in which the asyncio, asyncio.tasks and
        # asyncio.futures modules name the target's types.
        self._rebinder = Rebinder({
            tasks: {"_CTask": target.Task},
            futures: {"_CFuture": target.Future},
            asyncio: {"tasks": tasks, "futures": futures},
        })

    def is_c_type(self, value):
        if not isinstance(value, type):
            return False
        return any(base in self._types for base in value.__mro__)

    def needs_mapping(self, value):
        value = _unwrap(value)
        if isinstance(value, type):
            return self.is_c_type(value)
        if isinstance(value, types.FunctionType):
            return bool(_code_names(value.__code__) & _C_TYPE_NAMES)
        return False

    def map_type(self, cls):
        if cls in self._types:
            return self._types[cls]
        if _is_subclass_wrapper(cls):
            return self.map_type(cls.__bases__[-1])
        if not self.is_c_type(cls):
            return cls
        # A test's own subclass of a C type (CSubFutureTests.CSubFuture):
        # the same class body over the target's type.
        if cls not in self._clones:
            body = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
            self._clones[cls] = type(cls.__name__, tuple(self.map_type(b) for b in cls.__bases__), body)
        return self._clones[cls]

    def map_value(self, value):
        if isinstance(value, staticmethod):
            return staticmethod(self.map_value(value.__func__))
        if isinstance(value, classmethod):
            return classmethod(self.map_value(value.__func__))
        if isinstance(value, type):
            return self.map_type(value)
        if isinstance(value, types.FunctionType) and self.needs_mapping(value):
            return self._rebinder.rebind(value)
        return value


def _resolved_attrs(cls):
    """Each attribute name of `cls` with the value the MRO resolves it to,
    over the classes below unittest's own."""
    seen = {}
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith("unittest"):
            continue
        for name, value in vars(klass).items():
            seen.setdefault(name, value)
    return seen


_C_TOKEN = re.compile(r"(?<![A-Z])C(?=[A-Z])|(?<=[a-z])C$")


def turbo_name(name):
    """CTask_CFuture_Tests -> TurboTask_TurboFuture_Tests,
    TestCallStackC -> TestCallStackTurbo, EagerTests -> TurboEagerTests."""
    new = _C_TOKEN.sub("Turbo", name)
    return new if new != name else "Turbo" + name


def plug_types(mod, target):
    """The types-phase classes of `mod`: one subclass per class that refers to
    asyncio's C Task or Future, with the target's types in their place."""
    mapper = TypeMapper(target)
    taken = set(vars(mod))
    out = []
    for cls in module_classes(mod):
        attrs = _resolved_attrs(cls)
        to_map = {name: value for name, value in attrs.items() if mapper.needs_mapping(value)}
        if not to_map:
            continue
        new_attrs = {name: mapper.map_value(value) for name, value in to_map.items()}
        wrapped = {name: value for name, value in attrs.items() if _is_subclass_wrapper(value)}
        for name, value in wrapped.items():
            new_attrs[name] = mapper.map_type(value)
        name = turbo_name(cls.__name__)
        while name in taken:
            name += "_"
        taken.add(name)
        new_attrs.update(__module__=mod.__name__, __qualname__=name)
        new = type(name, (cls,), new_attrs)
        if wrapped:
            new = mod.add_subclass_tests(new)
        out.append(new)
    return out


def count_pluggable(mod):
    """How many classes of `mod` plug_types() would make, without a target."""

    class _Stub:
        Task = Future = object

    mapper = TypeMapper(_Stub)
    return sum(1 for cls in module_classes(mod)
               if any(mapper.needs_mapping(v) for v in _resolved_attrs(cls).values()))


def loop_variant_method(cls):
    """The loop-making method `cls` overrides to pick a stock loop class, or
    None if it is not a per-implementation variant."""
    for meth in tables.LOOP_METHODS:
        func = cls.__dict__.get(meth)
        if isinstance(func, types.FunctionType) and _code_names(func.__code__) & tables.STOCK_LOOP_NAMES:
            return meth
    return None


def make_loop_variants(mod, factory):
    """(TurboLoop classes, the stock variants they replace) for `mod`."""
    variants = [(cls, meth) for cls in module_classes(mod)
                if (meth := loop_variant_method(cls))]
    chosen = {}
    for cls, meth in variants:
        key = (cls.__bases__, meth)
        # Prefer a variant that is not skipped on this platform, as its
        # decorators are inherited.
        if key not in chosen or (getattr(chosen[key], "__unittest_skip__", False)
                                 and not getattr(cls, "__unittest_skip__", False)):
            chosen[key] = cls
    out = []
    taken = set(vars(mod))
    for (bases, meth), cls in chosen.items():
        if getattr(cls, "__unittest_skip__", False):
            continue
        name = "TurboLoop" + tables.LOOP_VARIANT_WORDS.sub("", cls.__name__)
        while name in taken:
            name += "_"
        taken.add(name)

        def make_loop(self, _factory=factory):
            return _factory()

        make_loop.__name__ = meth
        out.append(type(name, (cls,), {meth: make_loop, "__module__": mod.__name__, "__qualname__": name}))
    return out, {cls for cls, _ in variants}


def rebind_stock_loop(cls, mod, loop_class):
    """A TurboLoop subclass of `cls` whose methods that name
    asyncio.SelectorEventLoop get `loop_class` under that name."""
    import asyncio

    rebinder = Rebinder({asyncio: {"SelectorEventLoop": loop_class}})
    attrs = {}
    for name, value in _resolved_attrs(cls).items():
        func = _unwrap(value)
        if isinstance(func, types.FunctionType) and "SelectorEventLoop" in _code_names(func.__code__):
            new = rebinder.rebind(func)
            attrs[name] = staticmethod(new) if isinstance(value, staticmethod) else new
    name = "TurboLoop" + cls.__name__
    attrs.update(__module__=mod.__name__, __qualname__=name)
    return type(name, (cls,), attrs)


def rebind_ssl_protocol(cls, mod, ssl_protocol):
    """A TurboLoop subclass of `cls` whose methods that name the
    asyncio.sslproto module see `ssl_protocol` as its SSLProtocol."""
    from asyncio import sslproto

    rebinder = Rebinder({sslproto: {"SSLProtocol": ssl_protocol}})
    attrs = {}
    for name, value in _resolved_attrs(cls).items():
        func = _unwrap(value)
        if isinstance(func, types.FunctionType) and "sslproto" in _code_names(func.__code__):
            new = rebinder.rebind(func)
            attrs[name] = staticmethod(new) if isinstance(value, staticmethod) else new
    name = "TurboLoop" + cls.__name__
    attrs.update(__module__=mod.__name__, __qualname__=name)
    return type(name, (cls,), attrs)


def in_family(cls, mod, families):
    return any(k.__name__ in families and k.__module__ == mod.__name__ for k in cls.__mro__)


def defining_class(cls, method_name):
    for klass in cls.__mro__:
        if method_name in vars(klass):
            return klass
    return cls


def static_attr(cls, name):
    try:
        return _unwrap(inspect.getattr_static(cls, name))
    except AttributeError:
        return None
