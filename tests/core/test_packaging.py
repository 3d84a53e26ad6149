"""The simulation path runs on `pip install -e .` alone: every third-party module it imports is
a declared dependency (not one that only an extra, e.g. hypothesis in `dev`, pulls in)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = {"seqsched"}
# the simulation path (DESIGN.md: no torch); live backends and model predictors are extras
SIM_PATH = ["common", "sim", "policies", "analysis", "traces", "app/run.py", "backends/executor.py",
            "backends/cost_model.py", "backends/roofline.py", "backends/specs.py",
            "backends/presets.py", "predictors/base.py", "predictors/basic.py",
            "predictors/__init__.py"]
IMPORT_TO_DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml"}


def _imports(path: Path) -> set[str]:
    """Module-level imports (imports inside functions are the lazy, optional ones)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_simulation_imports_are_declared_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower()
                for d in project["dependencies"]}
    files = []
    for entry in SIM_PATH:
        p = ROOT / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    missing = {}
    for f in files:
        for name in _imports(f) - LOCAL - set(sys.stdlib_module_names):
            if IMPORT_TO_DIST.get(name, name).lower() not in declared:
                missing.setdefault(name, []).append(str(f.relative_to(ROOT)))
    assert not missing, f"imported but not in pyproject dependencies: {missing}"


def test_a_simulation_run_imports_no_torch():
    import subprocess
    code = ("import sys\nfrom seqsched.app.cli import main\n"
            "main(['simulate', 'synth:alpaca-vicuna', '-n', '40', '--no-progress', "
            "'--policy', 'binned', '--predictor', 'noisy'])\n"
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'peft') "
            "if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout
