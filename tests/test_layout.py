"""The package's imports, read with ``ast``: data flows one way through the stages, and no module imports in a cycle."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Stages in the order data flows; a module may import its own stage or an earlier one.
STAGES = (
    "foundation",
    "data_sim",
    "segnet.network",
    "segnet.training",
    "segnet.calibration",
    "segnet.evaluation",
    "segnet.inpainting",
    "segnet.serving",
    "segnet.commands",
    "segnet.cli",
    "segnet",
)
PACKAGES = ("foundation", "data_sim", "segnet")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every project module ``path`` imports, at its top or inside functions, relative imports resolved."""
    name, found = module_name(path), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m.split(".")[0] in PACKAGES}


def modules() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            graph[module_name(path)] = imports_of(path)
    return {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}


def stage_of(module: str) -> int:
    return next(k for k, stage in enumerate(STAGES) if module == stage or module.startswith(stage + "."))


def later_stage_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} ({STAGES[stage_of(m)]}) imports {i} ({STAGES[stage_of(i)]})"
        for m, imports in graph.items()
        for i in sorted(imports)
        if stage_of(i) > stage_of(m) and not m.startswith(i + ".")
    ]


def import_cycles(graph: dict[str, set[str]]) -> list[str]:
    # A package's __init__ importing its own modules is not a cycle through them.
    graph = {
        m: {i for i in imports if not i.startswith(m + ".") and not m.startswith(i + ".")}
        for m, imports in graph.items()
    }
    state, cycles = {}, []

    def visit(m, trail):
        state[m] = "open"
        for i in sorted(graph.get(m, ())):
            if state.get(i) == "open":
                cycles.append(" -> ".join(trail[trail.index(i) :] + [i]))
            elif i not in state:
                visit(i, trail + [i])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_no_module_imports_a_later_stage():
    wrong = later_stage_imports(modules())
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    cycles = import_cycles(modules())
    assert not cycles, "\n".join(cycles)


def test_the_checks_see_a_wrong_import_and_a_cycle():
    """The reader is not blind, and the checks catch what they are for on a graph that has it."""
    graph = modules()
    assert graph["segnet.serving.prediction"] & {"foundation.tiling", "segnet.calibration.pixel"}
    assert graph["data_sim.generator"] >= {"data_sim.injection", "foundation.classes"}  # relative and absolute
    wrong = {**graph, "segnet.training.dataset": graph["segnet.training.dataset"] | {"segnet.serving.api"}}
    assert later_stage_imports(wrong) == [
        "segnet.training.dataset (segnet.training) imports segnet.serving.api (segnet.serving)"
    ]
    looped = {**graph, "data_sim.injection": graph["data_sim.injection"] | {"data_sim.generator"}}
    assert "data_sim.generator -> data_sim.injection -> data_sim.generator" in import_cycles(looped)
