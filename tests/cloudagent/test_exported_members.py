"""The client library's public interface is its package's `__all__`: every submodule says what
it exports, the package exports exactly that, and the app imports nothing else from it."""

import ast
import importlib
import pkgutil

import webapp.cloudagent as library
from tests.helpers import ROOT

SUBMODULES = [info.name for info in pkgutil.iter_modules(library.__path__)]


def test_the_package_exports_every_submodules_public_names_and_only_those():
    exported = {}
    for name in SUBMODULES:
        module = importlib.import_module(f"{library.__name__}.{name}")
        assert hasattr(module, "__all__"), f"webapp/cloudagent/{name}.py has no __all__"
        for member in module.__all__:
            assert member not in exported, f"{member} exported by two submodules"
            exported[member] = getattr(module, member)
    assert sorted(library.__all__) == sorted(exported)
    for member, value in exported.items():
        assert getattr(library, member) is value, member


def resolved(node: ast.ImportFrom, module_name: str) -> str:
    """The absolute module an import-from names, as seen from `module_name`."""
    if not node.level:
        return node.module or ""
    base = module_name.split(".")[: -node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def app_modules():
    for path in sorted((ROOT / "webapp").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[:2] == ("webapp", "cloudagent"):
            continue
        if parts[-1] == "__init__":
            parts = (*parts[:-1], "__init__")  # relative imports count from the package
        yield path, ".".join(parts)


def test_the_app_imports_only_the_library_s_public_names():
    wrong = []
    for path, module_name in app_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                wrong += [
                    f"{where} imports {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("webapp.cloudagent.")
                ]
            elif isinstance(node, ast.ImportFrom):
                target = resolved(node, module_name)
                if target.startswith("webapp.cloudagent."):
                    wrong.append(f"{where} imports from {target}")
                elif target == "webapp.cloudagent":
                    wrong += [
                        f"{where} imports {alias.name}, not in webapp.cloudagent.__all__"
                        for alias in node.names
                        if alias.name not in library.__all__
                    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_relative_import_past_the_public_names():
    """The check above would catch what it is for: a submodule import from a subpackage."""
    node = ast.parse("from ..cloudagent.tokens import account_key").body[0]
    assert resolved(node, "webapp.panel.views") == "webapp.cloudagent.tokens"
    node = ast.parse("from .cloudagent import CloudAgentClient").body[0]
    assert resolved(node, "webapp.__init__") == "webapp.cloudagent"
