"""The MSI's setup steps and the settings file, on this machine.

``agent.windows_setup`` drives icacls and schtasks, which Linux does not have:
here a recording runner stands in for them (the only fake), and everything
else is real: the files written in ``tmp_path``, the task definition parsed as
XML, the agent reading the settings file and uploading to a real local server.
Under Wine, test_windows_packages.py runs the same code from the real MSI.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from agent import windows_setup
from agent.config_file import ConfigError, config_parse, config_read, config_render
from agent.run_agent import ExitStatus, main

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
PYTHON = Path(r"C:\Program Files\Relevo Agent\python\python.exe")


class Recorder:
    def __init__(self, status: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.status = status
        self.task_xml: str | None = None

    def __call__(self, argv):
        self.calls.append(list(argv))
        if "/XML" in argv:
            self.task_xml = Path(argv[argv.index("/XML") + 1]).read_bytes().decode("utf-16")
        return self.status


def test_settings_file_round_trip_and_refuses_unknown_keys(tmp_path):
    text = config_render({"INVENTORY_SERVER": "https://relevo.example", "INVENTORY_ENROLL_SECRET": "s3cret",
                          "INVENTORY_TOKEN": ""})
    assert "INVENTORY_TOKEN" not in text
    path = tmp_path / "agent.conf"
    path.write_text(text)
    assert config_read(path) == {"INVENTORY_SERVER": "https://relevo.example", "INVENTORY_ENROLL_SECRET": "s3cret"}
    assert config_parse('INVENTORY_TOKEN="quoted"\n# comment\n\n') == {"INVENTORY_TOKEN": "quoted"}
    with pytest.raises(ConfigError, match="line 2"):
        config_parse("INVENTORY_SERVER=x\nINVENTORY_SERVR=typo\n")
    with pytest.raises(ConfigError, match="one line"):
        config_render({"INVENTORY_TOKEN": "a\nINVENTORY_SERVER=evil"})


def test_agent_reads_the_settings_file_and_flags_and_environment_win(upload_server, tmp_path):
    config = tmp_path / "agent.conf"
    config.write_text("INVENTORY_SERVER=http://127.0.0.1:1\nINVENTORY_TOKEN=from-file-0123456789\n")
    base = ["--once", "--config", str(config), "--state-dir", str(tmp_path / "state"), "--sample-seconds", "0",
            "--retries", "1"]
    # The file's server answers nothing; the environment's wins over it.
    assert main(base, env={"INVENTORY_SERVER": upload_server.url}) == ExitStatus.DELIVERED
    assert upload_server.requests[-1]["headers"]["Authorization"] == "Token from-file-0123456789"
    assert main(base + ["--token", "from-flag-0123456789"], env={"INVENTORY_SERVER": upload_server.url}) == 0
    assert upload_server.requests[-1]["headers"]["Authorization"] == "Token from-flag-0123456789"
    assert len(upload_server.received) == 2


@pytest.mark.parametrize("argv", [["--config", "missing.conf"], ["--splay", "-1"]])
def test_bad_settings_file_or_splay_is_a_usage_error(argv, tmp_path, capsys):
    assert main(argv + ["--state-dir", str(tmp_path), "--server", "http://x", "--token", "t"], env={}) == 2
    assert "error:" in capsys.readouterr().err


def test_task_runs_the_bundled_python_as_system_every_five_minutes():
    task = ElementTree.fromstring(windows_setup.task_xml(
        python_exe=PYTHON, config=Path(r"C:\ProgramData\Relevo\agent.conf")).encode("utf-16"))
    assert task.find("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", NS).text == "PT5M"
    assert task.find("t:Triggers/t:BootTrigger", NS) is not None
    assert task.find("t:Principals/t:Principal/t:UserId", NS).text == "S-1-5-18"
    assert task.find("t:Settings/t:MultipleInstancesPolicy", NS).text == "IgnoreNew"
    assert task.find("t:Actions/t:Exec/t:Command", NS).text == str(PYTHON)
    arguments = task.find("t:Actions/t:Exec/t:Arguments", NS).text
    assert arguments == r'-I -B -m agent --once --config "C:\ProgramData\Relevo\agent.conf" --splay 60'


def test_install_locks_the_folder_before_writing_the_secret_then_registers_the_task(tmp_path):
    state = tmp_path / "Relevo"
    written_before_acl = []

    class Checking(Recorder):
        def __call__(self, argv):
            if "icacls.exe" in argv[0]:
                written_before_acl.append((state / "agent.conf").exists())
            return super().__call__(argv)

    run = Checking()
    assert windows_setup.install(server="https://relevo.example", enroll_secret="s3cret", token="",
                                 state_dir=state, python_exe=PYTHON, run=run) == 0
    assert written_before_acl == [False, False]
    setowner, grant, create = run.calls
    assert setowner[1:] == [str(state), "/setowner", "*S-1-5-32-544", "/T", "/C", "/Q"]
    assert grant[1:] == [str(state), "/inheritance:r", "/grant:r", "*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F",
                         "/T", "/C", "/Q"]
    assert create[0].endswith("schtasks.exe") and create[1:4] == ["/Create", "/TN", "Relevo Agent"]
    assert str(PYTHON) in run.task_xml
    assert config_read(state / "agent.conf") == {"INVENTORY_SERVER": "https://relevo.example",
                                                 "INVENTORY_ENROLL_SECRET": "s3cret"}
    assert not (state / "task.xml").exists()

    # A repair or upgrade without properties keeps the settings.
    assert windows_setup.install(server="", enroll_secret="", token="", state_dir=state, python_exe=PYTHON,
                                 run=Recorder()) == 0
    assert "s3cret" in (state / "agent.conf").read_text()


@pytest.mark.parametrize("server, secret, token, message", [
    ("", "", "", "no SERVER"),
    ("relevo.example", "s", "", "http"),
    ("https://relevo.example", "", "", "ENROLL_SECRET"),
])
def test_install_refuses_missing_or_bad_properties_and_writes_nothing(tmp_path, server, secret, token, message):
    run = Recorder()
    with pytest.raises(ConfigError, match=message):
        windows_setup.install(server=server, enroll_secret=secret, token=token, state_dir=tmp_path / "Relevo",
                              python_exe=PYTHON, run=run)
    assert run.calls == [] and not (tmp_path / "Relevo").exists()


def test_install_stops_when_the_acl_cannot_be_set(tmp_path):
    run = Recorder(status=5)
    assert windows_setup.install(server="https://relevo.example", enroll_secret="s", token="",
                                 state_dir=tmp_path / "Relevo", python_exe=PYTHON, run=run) == 1
    assert len(run.calls) == 1 and not (tmp_path / "Relevo" / "agent.conf").exists()


def test_install_refuses_a_state_folder_that_is_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "Relevo").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="link"):
        windows_setup.install(server="https://relevo.example", enroll_secret="s", token="",
                              state_dir=tmp_path / "Relevo", python_exe=PYTHON, run=Recorder())
    assert list(elsewhere.iterdir()) == []


def test_uninstall_removes_the_task_state_and_bytecode(tmp_path):
    state, home = tmp_path / "Relevo", tmp_path / "Relevo Agent"
    (state / "spool").mkdir(parents=True)
    (state / "token").write_text("t")
    (home / "python" / "app" / "agent" / "__pycache__").mkdir(parents=True)
    (home / "python" / "app" / "agent" / "__pycache__" / "x.pyc").write_bytes(b"")
    run = Recorder()
    assert windows_setup.uninstall(state_dir=state, install_dir=home, run=run) == 0
    assert run.calls[0][1:] == ["/Delete", "/TN", "Relevo Agent", "/F"]
    assert not state.exists() and not list(home.rglob("__pycache__"))
