"""Settings from flags, a TOML file and the environment: which wins, what `config` prints, what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support_cli import run, served

from simulator.settings import SETTINGS, SettingsError, option_items, resolve

ROOT = Path(__file__).resolve().parents[1]


def config_table(stdout: str) -> dict[str, tuple[str, str]]:
    """`nanobanana-sim config`'s rows as {setting: (value, source)}; columns are two or more spaces apart."""
    lines = stdout.splitlines()
    assert re.fullmatch(r"setting +value +from", lines[0])
    rows = {}
    for line in lines[1:]:
        name, value, source = re.split(r" {2,}", line)
        rows[name] = (value, source)
    return rows


def test_flags_override_the_file_which_overrides_the_environment(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text('seed = 7\nport = 9100\nscenario = ["chaos"]\nlog_format = "json"\n')
    env = {"NANOBANANA_SEED": "3", "NANOBANANA_PORT": "9000", "NANOBANANA_SPEED": "20", "NANOBANANA_LOG_LEVEL": "debug"}
    result = run("config", "--config", "sim.toml", "--port", "9200", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = config_table(result.stdout)
    assert rows["port"] == ("9200", "flag --port")  # flag over file over environment
    assert rows["seed"] == ("7", "file sim.toml")  # file over environment
    assert rows["speed"] == ("20", "environment NANOBANANA_SPEED")
    assert rows["log-level"] == ("debug", "environment NANOBANANA_LOG_LEVEL")
    assert rows["log-format"] == ("json", "file sim.toml")
    assert rows["scenario"] == ("chaos", "file sim.toml")
    assert rows["host"] == ("127.0.0.1", "default")
    assert rows["config"] == ("sim.toml", "flag --config")
    assert set(rows) == {setting.name for setting in SETTINGS}


def test_the_config_file_can_come_from_the_environment_and_a_flag_can_switch_its_setting_off(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text("virtual-clock = true\nautojump = true\n")
    result = run("config", "--no-autojump", env={"NANOBANANA_CONFIG": str(tmp_path / "sim.toml")})
    rows = config_table(result.stdout)
    assert rows["virtual-clock"] == ("on", f"file {tmp_path / 'sim.toml'}")
    assert rows["autojump"] == ("off", "flag --autojump")
    assert rows["config"] == (str(tmp_path / "sim.toml"), "environment NANOBANANA_CONFIG")


def test_options_from_a_toml_table_and_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text('[option.civitai]\nurl_ttl_seconds = 60\n[option.qingbo]\ncontract = "cn"\n')
    rows = config_table(run("config", "--config", str(tmp_path / "sim.toml")).stdout)
    assert rows["option"][0] == "civitai.url_ttl_seconds=60, qingbo.contract=cn"
    env = {"NANOBANANA_OPTION": 'crun.disabled_api_keys=["a","b"], qingbo.contract=cn'}
    rows = config_table(run("config", env=env).stdout)
    assert rows["option"] == ('crun.disabled_api_keys=["a","b"], qingbo.contract=cn', "environment NANOBANANA_OPTION")


def test_secrets_are_never_printed() -> None:
    result = run("config", "--signing-key", "k3y-material", env={"NANOBANANA_CONTROL_TOKEN": "t0ken-material"})
    rows = config_table(result.stdout)
    assert rows["control-token"] == ("(set, hidden)", "environment NANOBANANA_CONTROL_TOKEN")
    assert rows["signing-key"] == ("(set, hidden)", "flag --signing-key")
    assert "material" not in result.stdout + result.stderr


def test_a_bad_config_file_is_refused_naming_the_file_and_every_bad_key(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text('prot = 1\nseed = [1]\nport = "eighty"\nautojump = 1\nconfig = "other.toml"\n')
    result = run("serve", "--config", str(tmp_path / "sim.toml"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"nanobanana-sim: {tmp_path / 'sim.toml'}{problem}" for problem in (
        ": 'prot' is not a setting; did you mean 'port'?",
        ": seed takes a single value, not [1]",
        ": port takes a whole number, not 'eighty'",
        ": autojump takes true or false, not 1",
        ": 'config' cannot be set inside a config file; use --config or NANOBANANA_CONFIG",
    )]
    (tmp_path / "sim.toml").write_text("seed = \n")
    broken = run("serve", "--config", str(tmp_path / "sim.toml"))
    assert broken.returncode == 2 and f"{tmp_path / 'sim.toml'} is not valid TOML" in broken.stderr


def test_a_missing_config_file_and_a_bad_environment_value_are_refused() -> None:
    missing = run("serve", "--config", "no-such.toml")
    assert missing.returncode == 2 and "cannot read the config file no-such.toml" in missing.stderr
    bad = run("serve", env={"NANOBANANA_PORT": "eighty", "NANOBANANA_AUTOJUMP": "maybe"})
    assert bad.returncode == 2
    assert "NANOBANANA_PORT='eighty': port takes a whole number" in bad.stderr
    assert "NANOBANANA_AUTOJUMP='maybe': autojump takes one of" in bad.stderr  # every problem at once


def test_serve_runs_with_what_the_file_and_environment_say(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text("seed = 11\nvirtual_clock = true\n[option.civitai]\nurl_ttl_seconds = 45\n")
    env = {"NANOBANANA_PORT": "0", "NANOBANANA_SCENARIO": "empty-wallet"}
    with served("--config", "sim.toml", env=env, cwd=tmp_path) as server:
        assert any(line.startswith("config      sim.toml") for line in server.banner)
        info = httpx.get(f"{server.base}/_sim/").json()
        assert info["seed"] == 11 and info["clock"]["mode"] == "virtual"
        options = httpx.get(f"{server.base}/_sim/options/civitai").json()["options"]
        assert options["url_ttl_seconds"]["value"] == 45
        assert httpx.get(f"{server.base}/_sim/scenarios").json()["loaded"] == ["empty-wallet"]


def test_the_readme_serve_table_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## `nanobanana-sim serve`", 1)[1].split("\n## ", 1)[0]
    for setting in SETTINGS:
        assert f"`{setting.flag}" in section, f"{setting.flag} is missing from the README's serve table"


# -- the table's own rules, in-process --------------------------------------------------------------------------


def test_an_empty_environment_variable_is_an_unset_one() -> None:
    resolved = resolve({}, {"NANOBANANA_SEED": "", "NANOBANANA_CONTROL_TOKEN": "  "})
    assert resolved.sources["seed"] == "default" and resolved["control-token"] is None


def test_commas_inside_a_json_option_value_do_not_split_it() -> None:
    assert option_items('crun.disabled_api_keys=["a","b"],qingbo.contract=cn') == [
        'crun.disabled_api_keys=["a","b"]', "qingbo.contract=cn",
    ]


def test_every_problem_is_reported_and_each_names_where_it_came_from() -> None:
    with pytest.raises(SettingsError) as caught:
        resolve({"tick": 1.0}, {"NANOBANANA_AUTOJUMP": "true"})
    assert caught.value.problems == [
        "NANOBANANA_AUTOJUMP has no effect without --virtual-clock: write --virtual-clock --autojump, or drop "
        "--autojump (use --speed to make the real clock faster instead)",
        "--tick has no effect without --virtual-clock: write --virtual-clock --tick SECONDS, or drop --tick (use "
        "--speed to make the real clock faster instead)",
    ]


def test_loopback_names_and_addresses_need_no_token() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert resolve({"host": host}, {})["host"] == host
    with pytest.raises(SettingsError):
        resolve({"host": "::"}, {})
