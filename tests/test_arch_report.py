"""scripts/arch_report.py reads the issue-11 figures with ast: checked on a small made-up tree with one of each."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("arch_report", ROOT / "scripts" / "arch_report.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass resolves annotations through the module
    spec.loader.exec_module(mod)
    return mod


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")


def test_figures_on_a_made_up_tree(tmp_path, capsys):
    _write(tmp_path, {
        "core/__init__.py": "",
        "core/a/__init__.py": "",
        "core/a/x.py": "def f():\n    from core.b import y\n",
        "core/b/__init__.py": "",
        "core/b/y.py": "from core.a import x\nimport gradio\n",
        "core/endpoints.py": "def spec_for(choice):\n    return BackendSpec(model=choice)\n",
        "core/jobs/summary.py": "def line(info):\n    return f'{info.status}'\n",
        "core/other.py": """
            def convert(choice):
                return BackendSpec(type="transformers", model=choice)
            def fixed():
                return BackendSpec(model="tiny")
            def show(info):
                return f"{info.status} {100 * info.progress:.0f}%"
        """,
        "studio/__init__.py": "",
        "studio/tabs/__init__.py": "",
        "studio/tabs/t.py": """
            def handler(info, path):
                try:
                    path.write_text("x")
                except Exception:
                    pass
                return f'<div data-status="{info.status}"></div>'
        """,
    })
    report = _load()
    rep = report.measure(tmp_path)
    assert rep.room_cycles == [["core.a", "core.b"]]
    assert rep.file_cycles == [["core.a.x", "core.b.y"]]
    assert rep.core_to_ui == ["core.b.y -> gradio"]
    assert rep.broad == ["studio.tabs.t:5"] and rep.io_in_tabs == ["studio.tabs.t:4 path.write_text"]
    assert rep.converters == ["core.other.convert"]  # a fixed model name is no picker value; pickers is the one
    assert rep.renderers == {"core.other": ["show"]}  # an HTML data attribute is not a rendering
    assert report.main([str(tmp_path)]) == 1  # cycles and core -> gradio always fail
    assert "import cycles between core rooms         1" in capsys.readouterr().out


def test_strict_limits_fail_only_with_strict(tmp_path):
    _write(tmp_path, {"core/__init__.py": "", "studio/__init__.py": "",
                      "studio/x.py": "def f():\n    try:\n        pass\n    except Exception:\n        pass\n"})
    report = _load()
    assert report.main([str(tmp_path), "--max-broad", "0"]) == 0
    assert report.main([str(tmp_path), "--max-broad", "0", "--strict"]) == 1
