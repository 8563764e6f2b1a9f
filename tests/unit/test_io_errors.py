"""A bundle that cannot be written is a clear exit-2 error naming the path and the fix: no traceback, no report
printed as if all went well, and nothing half-made left behind."""

from __future__ import annotations

import pytest

from tests.unit.helpers import run_cli


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_out_dir_below_a_regular_file(capsys, work):
    (work / "afile").write_text("x")
    code, out, err = run_cli(capsys, "+goal=tone", f"out_dir={work / 'afile' / 'sub' / 'deeper'}")
    assert code == 2
    assert out == ""
    assert f"{work / 'afile'} is a file" in err and "fix: pick another out_dir" in err
    assert "Traceback" not in err
    assert _files(work) == ["afile"]


def test_out_dir_that_is_a_file(capsys, work):
    (work / "runs").write_text("x")
    code, _, err = run_cli(capsys, "+goal=tone", "out_dir=runs")
    assert code == 2 and "at: out_dir" in err
    assert (work / "runs").read_text() == "x"


def test_a_name_too_long_leaves_no_folder_behind(capsys, work):
    code, out, err = run_cli(capsys, "+goal=tone", f"out_dir={work / 'new' / 'deeper' / ('x' * 300)}")
    assert code == 2 and out == ""
    assert "longer than the file system allows" in err and "choose a shorter out_dir" in err
    assert _files(work) == []  # new/ and new/deeper/ were made by this run and are gone again


def test_a_folder_where_a_compiled_file_goes(capsys, work):
    code, _, err = run_cli(capsys, "+goal=tone", "out_dir=runs")
    assert code == 0, err
    bundle = next((work / "runs").iterdir())
    (bundle / "report.md").unlink()
    (bundle / "report.md").mkdir()
    before = _files(work)
    code, out, err = run_cli(capsys, "+goal=tone", "out_dir=runs")
    assert code == 2 and out == ""
    assert "is a folder where the compiled file report.md goes" in err
    assert _files(work) == before
