"""Where a run stands, as the runner, cv and the View 2 benchmark all ask it."""

from facerec.util.rundir import status


def test_new_resume_done(tmp_path):
    run = tmp_path / "run"
    assert status(run) == "new"  # not even created yet
    run.mkdir()
    (run / "best.pt").write_bytes(b"x")
    assert status(run) == "new"  # best.pt alone cannot continue a run
    (run / "last.pt").write_bytes(b"x")
    assert status(run) == "resume"
    (run / "summary.json").write_text("{}")
    assert status(run) == "done"  # summary.json is the last thing a run writes
