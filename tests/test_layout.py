"""How the packages depend on each other, read from their source: izf <- record <- search, tracking."""

import ast
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("izf", "record", "search", "tracking")


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


def test_the_record_contract_needs_neither_ray_nor_mlflow_nor_either_side():
    for path, tree in modules("record").items():
        assert not {m for m in imported(tree) if m.split(".")[0] in ("ray", "mlflow", "search", "tracking")}, path


def test_no_import_circle_between_modules():
    """Every import of one of our modules by another, at any depth in the file: the graph has no cycle."""
    graph = {}
    for package in PACKAGES:
        for path, tree in modules(package).items():
            name = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            graph[name] = {m for m in imported(tree) if m.split(".")[0] in PACKAGES}
    graph = {name: {m for m in found if m in graph and m != name and not name.startswith(f"{m}.")}
             for name, found in graph.items()}  # a package's __init__ re-exporting its own modules is no circle
    done, path = set(), []

    def visit(name: str) -> None:
        assert name not in path, " -> ".join([*path[path.index(name):], name])
        if name in done:
            return
        path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_file_of_search_is_over_250_lines():
    for path in (ROOT / "search").rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 250, path


def test_only_the_cli_composes_search_and_tracking():
    for path, tree in modules("search").items():
        if path != "search/cli.py":
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


def test_the_recorder_takes_every_event_of_the_record_contract():
    from record import EVENTS
    from tracking.recorder import MLflowRecorder

    for event, args in EVENTS.items():
        assert tuple(inspect.signature(getattr(MLflowRecorder, event)).parameters)[1:] == args, event
