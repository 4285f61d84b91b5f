"""How the packages depend on each other, read from their source: data -> izf -> search -> record -> tracking."""

import ast
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("izf", "search", "tracking")


def modules(package: str) -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in sorted((ROOT / package).rglob("*.py"))}


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_tracking_knows_a_search_only_through_its_record():
    for path, tree in modules("tracking").items():
        assert not {m for m in imported(tree) if m.split(".")[0] == "search"}, f"{path} imports search/"


def test_only_the_cli_composes_search_and_tracking():
    for path, tree in modules("search").items():
        if path != "search/run.py":
            assert not {m for m in imported(tree) if m.split(".")[0] == "tracking"}, f"{path} imports tracking/"


def test_izf_needs_neither_ray_nor_mlflow():
    outside = ("ray", "mlflow", "optuna", "search", "tracking")
    for path, tree in modules("izf").items():
        assert not {m for m in imported(tree) if m.split(".")[0] in outside}, path


def test_no_module_uses_another_modules_private_names():
    for package in (*PACKAGES, "bench"):
        for path, tree in modules(package).items():
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{path} imports {private} from {node.module}"
                if package == "bench":  # torch._dynamo and the like: only the imports are ours to judge there
                    continue
                if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                    owner = node.value
                    assert isinstance(owner, ast.Name) and owner.id in ("self", "cls"), \
                        f"{path}:{node.lineno} reaches into ._{node.attr[1:]} of another object"


def test_the_events_a_search_emits_are_the_ones_the_recorder_takes():
    from search.events import EVENTS
    from tracking.recorder import EVENTS as RECORDED
    from tracking.recorder import MLflowRecorder

    assert tuple(EVENTS) == RECORDED
    for event, args in EVENTS.items():
        assert tuple(inspect.signature(getattr(MLflowRecorder, event)).parameters)[1:] == args, event
