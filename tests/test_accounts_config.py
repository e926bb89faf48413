"""Many accounts in the configuration (issue #15 item 1): `[accounts.NAME]` tables or an
`accounts_file`, validated before anything is requested, each error naming the account."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sqquid_etl.accounts import Account, account_names, load_accounts, resolve_credentials, select_accounts
from sqquid_etl.cli import main
from sqquid_etl.errors import ConfigError


def write(tmp_path, text: str, name: str = "sqquid.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_without_accounts_has_none(tmp_path):
    path = write(tmp_path, '[api]\napi_key_env = "SQQUID_API_KEY"\n')
    assert load_accounts(path) == {} and account_names(path) == []


def test_accounts_in_the_file_keep_its_order_and_take_the_api_defaults(tmp_path):
    path = write(tmp_path, """
[api]
rate = 1.5
burst = 20
[extract]
start_date = "2024-01-01"
[accounts.zeta]
api_key_env = "ZETA_KEY"
rate = 2
streams = ["orders"]
[accounts.acme]
base_url = "http://127.0.0.1:9/"
username_env = "ACME_USER"
password_env = "ACME_PASSWORD"
start_date = "2025-02-01"
""")
    accounts = load_accounts(path)
    assert list(accounts) == ["zeta", "acme"] == account_names(path)
    assert accounts["zeta"] == Account(name="zeta", api_key_env="ZETA_KEY", rate=2.0, burst=20,
                                       start_date="2024-01-01", streams=("orders",))
    acme = accounts["acme"]
    assert (acme.base_url, acme.rate, acme.burst, acme.start_date, acme.streams) == (
        "http://127.0.0.1:9", 1.5, 20, "2025-02-01", None)
    assert (acme.username_env, acme.password_env, acme.api_key_env) == ("ACME_USER", "ACME_PASSWORD", None)


def test_an_accounts_file_next_to_the_config(tmp_path):
    write(tmp_path, '[accounts.globex]\napi_key_env = "GLOBEX_KEY"\nrate = 0\n', "accounts.toml")
    path = write(tmp_path, 'accounts_file = "accounts.toml"\n[destination]\nduckdb = "w.duckdb"\n')
    accounts = load_accounts(path)
    assert list(accounts) == ["globex"] and accounts["globex"].rate is None  # 0: no pacing


def test_the_config_file_is_found_as_the_cli_finds_it(tmp_path, monkeypatch):
    write(tmp_path, '[accounts.acme]\napi_key_env = "ACME_KEY"\n', "elsewhere.toml")
    monkeypatch.setenv("SQQUID_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert account_names() == ["acme"]
    monkeypatch.delenv("SQQUID_CONFIG")
    monkeypatch.chdir(tmp_path)
    assert account_names() == []  # no ./sqquid.toml


BAD = [
    ('[accounts.acme]\napi_key_env = "K"\nratee = 2\n', ["account acme", "'ratee'"]),
    ('[accounts.acme]\napi_key = "sk-live-123456"\n', ["account acme", "api_key", "api_key_env"]),
    ('[accounts.acme]\nusername = "ops@acme.test"\npassword_env = "P"\n', ["account acme", "username_env"]),
    ('[accounts.Acme]\napi_key_env = "K"\n', ["'Acme'", "lower-case"]),
    ('[accounts.-acme]\napi_key_env = "K"\n', ["'-acme'"]),
    (f'[accounts.{"a" * 64}]\napi_key_env = "K"\n', ["at most 63"]),
    ('[accounts.acme]\nrate = 2\n', ["account acme", "no credentials"]),
    ('[accounts.acme]\nusername_env = "U"\n', ["account acme", "no credentials"]),
    ('[accounts.acme]\napi_key_env = "K"\nusername_env = "U"\npassword_env = "P"\n', ["account acme", "not both"]),
    ('[accounts.acme]\napi_key_env = "sk live key"\n', ["account acme", "not the name of an environment variable"]),
    ('[accounts.acme]\napi_key_env = "K"\nrate = -1\n', ["account acme", "rate -1"]),
    ('[accounts.acme]\napi_key_env = "K"\nrate = true\n', ["account acme", "rate"]),
    ('[accounts.acme]\napi_key_env = "K"\nburst = 0\n', ["account acme", "burst 0"]),
    ('[accounts.acme]\napi_key_env = "K"\nstart_date = "yesterday"\n', ["account acme", "start_date", "'yesterday'"]),
    ('[accounts.acme]\napi_key_env = "K"\nstreams = "orders"\n', ["account acme", "streams"]),
    ('[accounts.acme]\napi_key_env = "K"\nstreams = ["orders", 3]\n', ["account acme", "streams"]),
    ('[accounts.acme]\napi_key_env = "K"\nbase_url = "http://api.example.com"\n', ["account acme", "base_url", "https"]),
    ('[accounts]\nacme = "K"\n', ["account acme", "must be a table"]),
    ('accounts = ["acme"]\n', ["accounts must be tables"]),
    ('[accounts.acme]\napi_key_env = "SAME"\n[accounts.globex]\napi_key_env = "SAME"\n',
     ["accounts acme and globex", "$SAME"]),
    ('[accounts.acme]\nusername_env = "U"\npassword_env = "P1"\n[accounts.globex]\nusername_env = "U"\npassword_env = "P2"\n',
     ["accounts acme and globex", "$U"]),
    ('accounts_file = 3\n', ["accounts_file"]),
]


@pytest.mark.parametrize("text, words", BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_a_bad_account_is_an_error_naming_it(tmp_path, text, words):
    with pytest.raises(ConfigError) as caught:
        load_accounts(write(tmp_path, text))
    message = str(caught.value)
    assert all(word in message for word in words), message
    assert "sk-live-123456" not in message and "ops@acme.test" not in message


def test_one_username_at_two_base_urls_is_two_accounts(tmp_path):
    path = write(tmp_path, '[accounts.eu]\nusername_env = "U"\npassword_env = "P"\nbase_url = "https://eu.example.com"\n'
                           '[accounts.us]\nusername_env = "U"\npassword_env = "P"\nbase_url = "https://us.example.com"\n')
    assert list(load_accounts(path)) == ["eu", "us"]


def test_an_accounts_file_and_tables_or_other_sections_are_refused(tmp_path):
    write(tmp_path, '[accounts.a]\napi_key_env = "A"\n[api]\nrate = 2\n', "accounts.toml")
    with pytest.raises(ConfigError, match="only \\[accounts.NAME\\] tables belong here, not api"):
        load_accounts(write(tmp_path, 'accounts_file = "accounts.toml"\n'))
    with pytest.raises(ConfigError, match="keep one"):
        load_accounts(write(tmp_path, 'accounts_file = "accounts.toml"\n[accounts.b]\napi_key_env = "B"\n'))
    with pytest.raises(ConfigError, match="accounts_file .*missing.toml: cannot read"):
        load_accounts(write(tmp_path, 'accounts_file = "missing.toml"\n'))


def _two(tmp_path):
    return load_accounts(write(tmp_path, '[accounts.acme]\napi_key_env = "ACME_KEY"\n'
                                         '[accounts.globex]\nusername_env = "GLOBEX_USER"\npassword_env = "GLOBEX_PASSWORD"\n'
                                         '[accounts.initech]\napi_key_env = "INITECH_KEY"\n'))


def test_credentials_come_from_the_variables_each_account_names(tmp_path):
    accounts = _two(tmp_path)
    env = {"ACME_KEY": "key-acme-1", "GLOBEX_USER": "ops@globex.test", "GLOBEX_PASSWORD": "pw-globex",
           "INITECH_KEY": "key-initech"}
    found = resolve_credentials(accounts.values(), env)
    assert found["acme"].api_key == "key-acme-1"
    assert (found["globex"].username, found["globex"].password) == ("ops@globex.test", "pw-globex")
    assert "key-acme-1" not in repr(found) and "pw-globex" not in repr(accounts)


def test_a_missing_variable_names_the_account_and_the_variable(tmp_path):
    accounts = _two(tmp_path)
    with pytest.raises(ConfigError, match=r"account globex: \$GLOBEX_PASSWORD .*not set"):
        resolve_credentials(accounts.values(), {"ACME_KEY": "k1", "GLOBEX_USER": "u", "INITECH_KEY": "k2"})
    # only the accounts selected need theirs
    assert list(resolve_credentials([accounts["acme"]], {"ACME_KEY": "k1"})) == ["acme"]


def test_two_accounts_with_one_key_value_are_refused_without_showing_it(tmp_path):
    accounts = _two(tmp_path)
    env = {"ACME_KEY": "shared-key-999", "INITECH_KEY": "shared-key-999", "GLOBEX_USER": "u", "GLOBEX_PASSWORD": "p"}
    with pytest.raises(ConfigError, match="accounts acme and initech have the same api key") as caught:
        resolve_credentials(accounts.values(), env)
    assert "shared-key-999" not in str(caught.value)


def test_selecting_accounts(tmp_path):
    accounts = _two(tmp_path)
    assert [a.name for a in select_accounts(accounts, ["initech", "acme", "acme"])] == ["initech", "acme"]
    assert [a.name for a in select_accounts(accounts, None, all_accounts=True)] == ["acme", "globex", "initech"]
    with pytest.raises(ConfigError, match="no account nosuch .*known: acme, globex, initech"):
        select_accounts(accounts, ["acme", "nosuch"])
    with pytest.raises(ConfigError, match="give one of them"):
        select_accounts(accounts, ["acme"], all_accounts=True)
    with pytest.raises(ConfigError, match="no accounts"):
        select_accounts({}, None, all_accounts=True)


# -- the command line: errors before anything is requested ------------------------------------


def _cli(tmp_path, sandbox, args, env):
    write(tmp_path, f'[accounts.acme]\nbase_url = "{sandbox.url}"\napi_key_env = "ACME_KEY"\nrate = 0\n'
                    f'[accounts.globex]\nbase_url = "{sandbox.url}"\napi_key_env = "GLOBEX_KEY"\nrate = 0\n')
    runner = CliRunner()
    return runner.invoke(main, ["extract", "--config", str(tmp_path / "sqquid.toml"),
                                "--duckdb", str(tmp_path / "w.duckdb"), "--no-progress", *args], env=env)


CLI_BAD = [
    (["--account", "acme,nosuch"], {"ACME_KEY": "k"}, "no account nosuch"),
    (["--account", "acme,globex"], {"ACME_KEY": "sandbox-api-key"}, "account globex: $GLOBEX_KEY"),
    (["--all-accounts"], {"ACME_KEY": "sandbox-api-key", "GLOBEX_KEY": "sandbox-api-key"},
     "accounts acme and globex have the same api key"),
    (["--account", "acme", "--all-accounts"], {"ACME_KEY": "k"}, "give one of them"),
    (["--account", "acme", "--api-key", "sandbox-api-key"], {"ACME_KEY": "k"}, "--api-key with --account"),
    (["--account", "acme", "--streams", "ordrs"], {"ACME_KEY": "k"}, "account acme: unknown stream(s) ordrs"),
    (["--account", "acme", "--burst", "0"], {"ACME_KEY": "k"}, "account acme: --burst 0"),
]


@pytest.mark.parametrize("args, env, words", CLI_BAD, ids=[f"cli-{i}" for i in range(len(CLI_BAD))])
def test_cli_errors_name_the_account_and_request_nothing(tmp_path, sandbox, args, env, words):
    result = _cli(tmp_path, sandbox, args, {"SQQUID_API_KEY": None, "SQQUID_CONFIG": None, **env})
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert sandbox.stats.requests == 0
    assert not (tmp_path / "w.duckdb").exists()
    assert "sandbox-api-key" not in result.output


def test_cli_without_accounts_but_asked_for_them(tmp_path):
    write(tmp_path, '[api]\napi_key_env = "SQQUID_API_KEY"\n')
    result = CliRunner().invoke(main, ["extract", "--config", str(tmp_path / "sqquid.toml"), "--all-accounts"])
    assert result.exit_code == 2 and "the config file has no accounts" in result.output


def test_python_api_refuses_what_is_one_account_s(tmp_path, sandbox, monkeypatch):
    from sqquid_etl import extract

    monkeypatch.delenv("ACME_KEY", raising=False)
    path = write(tmp_path, f'[accounts.acme]\nbase_url = "{sandbox.url}"\napi_key_env = "ACME_KEY"\n')
    with pytest.raises(ConfigError, match="no account globex"):
        extract(config=path, accounts=["globex"], duckdb=tmp_path / "w.duckdb")
    with pytest.raises(ConfigError, match="client= and stream_done="):
        extract(config=path, accounts=True, client=object())
    with pytest.raises(ConfigError, match=r"account acme: \$ACME_KEY"):
        extract(config=path, accounts="acme", duckdb=tmp_path / "w.duckdb")
    assert sandbox.stats.requests == 0 and not (tmp_path / "w.duckdb").exists()


def test_extract_without_account_options_says_how_to_run_the_accounts(tmp_path):
    write(tmp_path, '[accounts.acme]\napi_key_env = "ACME_KEY"\n')
    result = CliRunner().invoke(main, ["extract", "--config", str(tmp_path / "sqquid.toml"), "--no-progress"],
                                env={"SQQUID_API_KEY": None, "SQQUID_USERNAME": None, "SQQUID_PASSWORD": None})
    assert result.exit_code == 2 and "--account NAME" in result.output and "--all-accounts" in result.output
