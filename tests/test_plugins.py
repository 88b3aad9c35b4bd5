"""Plugins: folders, suite `plugins = [...]`, entry points, and broken plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from wmbench import registry

POSTERIZE = textwrap.dedent('''
    import numpy as np
    from wmbench.api import attack

    @attack("posterize_test", modality="image", strengths=[6, 4, 2])
    def posterize(image, strength, rng):
        """Keep only the top `strength` bits of every channel."""
        shift = 8 - int(strength)
        return ((image >> shift) << shift).astype(np.uint8)
''')

CLASS_FORM = textwrap.dedent('''
    import numpy as np
    from wmbench.api import Attack

    class Invert(Attack):
        """Blend towards the negative image."""
        name = "invert_test"
        modality = "image"
        strengths = (0.1, 0.5)

        def setup(self):
            self.calls = 0

        def apply(self, image, strength, rng):
            self.calls += 1
            out = (1 - strength) * image + strength * (255 - image.astype(float))
            return np.clip(out, 0, 255).astype(np.uint8)
''')


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmbench", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_builtin_attacks_come_through_the_entry_point_group() -> None:
    specs = registry.attacks()
    assert "jpeg" in specs
    assert specs["jpeg"].source.startswith("wmbench:wmbench_attacks."), specs["jpeg"].source


def test_function_and_class_plugins_load_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "posterize.py").write_text(POSTERIZE)
    (tmp_path / "invert.py").write_text(CLASS_FORM)
    assert registry.load_plugin_folder(tmp_path) == []
    poster = registry.get_attack("posterize_test")
    assert poster.strengths == (6, 4, 2) and poster.modality == "image"
    assert poster.source == str(tmp_path / "posterize.py")
    image = np.full((8, 8, 3), 0b10110111, dtype=np.uint8)
    out = poster(image, 2, np.random.default_rng(0))
    assert int(out[0, 0, 0]) == 0b10000000
    invert = registry.get_attack("invert_test")
    assert invert.description == "Blend towards the negative image."
    assert int(invert(np.zeros((2, 2, 3), np.uint8), 0.5, np.random.default_rng(0))[0, 0, 0]) == 127  # 127.5 truncated


def test_broken_plugin_is_a_warning_and_others_still_load(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "good.py").write_text(POSTERIZE.replace("posterize_test", "posterize_ok"))
    with pytest.warns(registry.PluginWarning, match="broken.py"):
        failed = registry.load_plugin_folder(tmp_path)
    assert failed == [str(tmp_path / "broken.py")]
    assert "posterize_ok" in registry.attacks()


def test_two_plugins_claiming_one_name_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a_jpeg.py").write_text(POSTERIZE.replace("posterize_test", "jpeg"))
    with pytest.raises(registry.RegistryError, match="'jpeg' is registered twice"):
        registry.load_plugin_folder(tmp_path)


def test_suite_plugins_field_runs_the_plugin_end_to_end(tmp_path: Path) -> None:
    plugins = tmp_path / "my_attacks"
    plugins.mkdir()
    (plugins / "posterize.py").write_text(POSTERIZE.replace("posterize_test", "posterize_e2e"))
    (tmp_path / "suite.toml").write_text(textwrap.dedent('''
        plugins = ["my_attacks"]
        [suite]
        name = "plugin-e2e"
        [samples]
        images = ["builtin:images"]
        [[methods]]
        name = "dwtDctSvd"
        key = "k"
        max_samples = 1
        [[attacks]]
        name = "posterize_e2e"
        strengths = [6, 2]
    '''))
    run = _run("run", "suite.toml", "--out", "out", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in
            _run("export", "out", "--format", "jsonl", cwd=tmp_path).stdout.splitlines()]
    poster = [r for r in rows if r["attack"] == "posterize_e2e"]
    assert len(poster) == 4 and all(r["error"] is None for r in poster)
    # 6 bits keep the mark; 2 bits (4 grey levels per channel) leave a visibly degraded image.
    by_strength = {(r["strength"], r["marked"]): r for r in poster}
    assert by_strength[(6, True)]["detected"] is True
    assert by_strength[(2, True)]["psnr"] < by_strength[(6, True)]["psnr"]


def test_cli_plugins_option_lists_the_plugin_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "posterize.py").write_text(POSTERIZE.replace("posterize_test", "posterize_cli"))
    out = _run("--plugins", str(tmp_path), "list", "attacks", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("posterize_cli"))
    assert str(tmp_path / "posterize.py") in line and "[6, 4, 2]" in line


def test_missing_plugin_folder_is_a_one_line_error(tmp_path: Path) -> None:
    out = _run("--plugins", str(tmp_path / "nope"), "list", "attacks", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nope" in out.stderr


def test_built_in_attacks_import_nothing_from_wmbench_but_the_public_api() -> None:
    """attacks/ has no private hooks: a third-party plugin can do all that they do."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "attacks"
    offenders = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "wmbench" and n != "wmbench.api"]
    assert len(list(folder.glob("text_*.py"))) >= 3
    assert not offenders, offenders
