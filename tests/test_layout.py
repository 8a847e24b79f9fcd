"""The suite's own rule: shared helpers live in tests/helpers.py and reach tests through it
and conftest.py's fixtures; no test module imports another test module or a conftest."""

import ast

from tests.helpers import ROOT


def imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            yield module
            if not module or node.level:  # `from . import x`: x may be a module
                yield from (f"{module}.{alias.name}" for alias in node.names)


def test_no_test_module_imports_another_test_module_or_a_conftest():
    wrong = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for module in imported_modules(tree):
            last = module.rpartition(".")[2]
            if last.startswith("test_") or last == "conftest":
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_catches_both_kinds_of_import():
    source = "from .test_panel import Panel\nfrom .. import conftest\nimport tests.conftest"
    tree = ast.parse(source)
    found = [m.rpartition(".")[2] for m in imported_modules(tree)]
    assert found.count("test_panel") == 1 and found.count("conftest") == 2
