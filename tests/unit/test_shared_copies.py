"""Every loader module carries its own copy of ``_shared()`` (Salt ignores entry points for utils, so the
shared code is loaded by path): the copies must stay byte-identical, or one loader would find a file another
misses."""

import ast

from tests.shared_code import REPO

LOADER_DIRS = ("_runners", "_modules", "_states", "_beacons")


def _copies():
    copies = {}
    for directory in LOADER_DIRS:
        for path in sorted((REPO / directory).glob("*.py")):
            source = path.read_text(encoding="utf-8")
            for node in ast.parse(source).body:
                if isinstance(node, ast.FunctionDef) and node.name == "_shared":
                    copies[f"{directory}/{path.name}"] = ast.get_source_segment(source, node)
    return copies


def test_every_loader_module_using_shared_code_has_the_same_shared():
    copies = _copies()
    # Every loader module that loads shared code has its copy (no module imports another's).
    users = {
        f"{d}/{p.name}"
        for d in LOADER_DIRS
        for p in (REPO / d).glob("*.py")
        if '_shared("expressware_' in p.read_text(encoding="utf-8")
    }
    assert users <= set(copies), f"loader modules using _shared without their own copy: {users - set(copies)}"
    assert len(copies) >= 7, copies.keys()
    reference = copies["_runners/rolling.py"]
    different = sorted(name for name, text in copies.items() if text != reference)
    assert not different, f"_shared() differs from _runners/rolling.py's in: {', '.join(different)}"


def test_every_shared_module_loading_another_has_the_same_sibling():
    # A shared module loads another by path with _sibling(), under the key _shared() uses: one module object
    # (one RolloutError class) whoever loads it first.
    copies = {}
    for path in sorted((REPO / "_utils").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name == "_sibling":
                copies[path.name] = ast.get_source_segment(source, node)
    assert len(copies) >= 5, copies.keys()
    reference = copies["expressware_driver.py"]
    assert sorted(name for name, text in copies.items() if text != reference) == []
    shared = _copies()["_runners/rolling.py"]
    # The same key as _shared()'s, for the same file.
    key = 'key = f"_saltext_expressware_shared.{name}_{abs(hash((path, os.stat(path).st_mtime_ns)))}"'
    assert key in reference and key in shared
