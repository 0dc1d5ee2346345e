"""Check that every class in turboloop's stubs has, at run time, the bases
the stubs give it.  mypy.stubtest compares the members of classes, not
their bases, so this covers the rest: a stub saying `class Task(Future[T],
asyncio.Task[T])` must be matched by a run-time class that subclasses both.

    python tests/typecheck/stub_bases.py

The stubs read are the ones next to the turboloop that Python imports.
Exit status 1 if a base does not hold (or an entry of AHEAD no longer
applies), 0 otherwise.
"""

import ast
import importlib
import pathlib
import sys
import warnings

import turboloop

# Bases the stubs give ahead of the run-time classes, each with its reason.
AHEAD = {}
# Stub-only bases with nothing to compare at run time.
TYPING_ONLY = {"typing", "typing_extensions", "collections.abc"}


def active(body):
    """The statements of a stub body that apply to this Python: the branch
    taken of each `if sys.version_info ...` (or `sys.platform`)."""
    for node in body:
        if isinstance(node, ast.If):
            test = compile(ast.Expression(node.test), "<stub>", "eval")
            yield from active(node.body if eval(test, {"sys": sys}) else node.orelse)
        else:
            yield node


def imported_names(tree, package):
    """name -> (module, attribute or None) for the stub's imports."""
    names = {}
    for node in active(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0], None)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{module}" if module else base
            for alias in node.names:
                names[alias.asname or alias.name] = (module, alias.name)
    return names


def resolve(expr, names, module):
    """(dotted name, run-time object or None if typing only) of a base."""
    if isinstance(expr, ast.Subscript):
        expr = expr.value
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.insert(0, expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        raise ValueError(f"cannot read the base {ast.unparse(expr)}")
    if expr.id in names:
        mod, attr = names[expr.id]
        if mod in TYPING_ONLY:
            return mod + "." + ".".join([attr or expr.id] + parts), None
        obj = importlib.import_module(mod)
        dotted = mod
        if attr is not None:
            try:
                obj = getattr(obj, attr)
            except AttributeError:      # a submodule: `from asyncio import events`
                obj = importlib.import_module(f"{mod}.{attr}")
            dotted += "." + attr
    else:
        obj, dotted = getattr(module, expr.id), f"{module.__name__}.{expr.id}"
    for part in parts:
        obj, dotted = getattr(obj, part), f"{dotted}.{part}"
    # asyncio's classes go by their public names (asyncio.Future is
    # _asyncio.Future).
    asyncio = sys.modules["asyncio"]
    if getattr(asyncio, getattr(obj, "__name__", ""), None) is obj:
        dotted = f"asyncio.{obj.__name__}"
    return dotted, obj


def main():
    # turboloop.EventLoopPolicy warns on 3.14+, as asyncio's policies do.
    warnings.simplefilter("ignore", DeprecationWarning)
    problems, checked, used = [], 0, set()
    package_dir = pathlib.Path(turboloop.__file__).parent
    for stub in sorted(package_dir.glob("*.pyi")):
        name = "turboloop" if stub.stem == "__init__" else f"turboloop.{stub.stem}"
        module = importlib.import_module(name)
        tree = ast.parse(stub.read_text(encoding="utf-8"))
        names = imported_names(tree, "turboloop")
        for node in active(tree.body):
            if not isinstance(node, ast.ClassDef):
                continue
            if any(ast.unparse(d).endswith("type_check_only") for d in node.decorator_list):
                continue
            runtime = getattr(module, node.name)
            qualname = f"{name}.{node.name}"
            for base in node.bases:
                dotted, obj = resolve(base, names, module)
                if obj is None:
                    continue
                checked += 1
                holds = issubclass(runtime, obj)
                if (qualname, dotted) in AHEAD:
                    used.add((qualname, dotted))
                    if holds:
                        problems.append(f"{qualname} is now a subclass of {dotted}: "
                                        f"take it out of AHEAD in {__file__}")
                    continue
                if holds:
                    print(f"ok: {qualname} -> {dotted}")
                else:
                    problems.append(f"{qualname}: the stub gives it the base {dotted}, "
                                    f"which it does not have at run time")
    for (qualname, dotted), why in AHEAD.items():
        if (qualname, dotted) not in used:
            problems.append(f"AHEAD lists {qualname} -> {dotted}, which no stub has")
        else:
            print(f"ahead of run time: {qualname} -> {dotted} ({why})")
    print(f"{checked} base classes checked in {package_dir}")
    for p in problems:
        print("error:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
