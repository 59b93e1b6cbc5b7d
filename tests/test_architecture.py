"""The house (docs/architecture.md): amk/core needs nothing else of amk, stays small, and imports flow down."""

import ast
from pathlib import Path

import pytest

AMK = Path(__file__).resolve().parent.parent / "amk"
CORE_MAX_LINES = 2500
# Each package may import only the packages below it (and itself); amk/cli and amk/integrations sit on top.
LAYERS = {
    "core": set(),
    "decode": {"core"},
    "prior": {"core", "decode"},
    "stores": {"core"},
    "featurizers": {"core", "decode", "prior"},
    "rankers": {"core", "prior"},
    "formats": {"core"},
    "backends": {"core", "decode", "formats"},
    "tuning": {"core", "decode", "prior", "formats"},
    "testing": {"core", "decode"},  # the plugin contract: amk's public API and its sample decode records only
}


def amk_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of an amk module in ``path``, at any depth (function-level too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "amk" else [f"amk.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n == "amk" or n.startswith("amk.")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name == "amk" or a.name.startswith("amk.")]
    return found


def test_core_imports_nothing_from_any_other_amk_package():
    reaching_up = [f"{path.relative_to(AMK.parent)}:{line} imports {module}"
                   for path in sorted((AMK / "core").glob("*.py")) for line, module in amk_imports(path)
                   if not module.startswith("amk.core.") and module != "amk.core"]
    assert reaching_up == []


def test_core_stays_at_most_2500_lines():
    lines = sum(len(p.read_text().splitlines()) for p in (AMK / "core").glob("*.py"))
    assert lines <= CORE_MAX_LINES, f"amk/core is {lines} lines; move what is not the plugin framework out"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_package_imports_only_the_packages_below_it(package):
    allowed = LAYERS[package] | {package}
    wrong = []
    for path in sorted((AMK / package).rglob("*.py")):
        for line, module in amk_imports(path):
            parts = module.split(".")
            if len(parts) < 2 or parts[1].startswith("_") or parts[1] in ("hookimpl", "hookspec", "__version__"):
                continue  # the root package: the hook markers and the version
            if parts[1] not in allowed:
                wrong.append(f"{path.relative_to(AMK.parent)}:{line} imports {module}")
    assert wrong == []
