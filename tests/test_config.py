"""Configuration errors name the file and key; defaults are sensible."""

from __future__ import annotations

from pathlib import Path

import pytest

from baseliner import config
from baseliner.errors import ConfigError


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path)


def test_example_configuration_is_valid():
    example = Path(__file__).parent.parent / "config" / "baseliner.example.toml"
    loaded = config.load(example)
    assert loaded.aws is not None


def test_full_aws_section(tmp_path):
    loaded = load_text(tmp_path, """
[store]
path = "x/y.db"
[aws]
regions = ["us-east-1", "eu-west-1"]
max_workers = 4
max_attempts = 3
[[aws.accounts]]
name = "prod"
role_arn = "arn:aws:iam::111111111111:role/BaselinerReadOnly"
[[aws.accounts]]
name = "dev"
profile = "dev"
[aws.organization]
role_name = "BaselinerReadOnly"
exclude = ["999999999999"]
""")
    assert loaded.store.path == Path("x/y.db")
    aws = loaded.aws
    assert aws.regions == ("us-east-1", "eu-west-1")
    assert (aws.max_workers, aws.max_attempts) == (4, 3)
    assert aws.accounts[0].account_hint == "111111111111"
    assert aws.accounts[1].profile == "dev"
    assert aws.organization.role_name == "BaselinerReadOnly"
    assert loaded.providers == ["aws"]


def test_no_file_at_the_default_path_means_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = config.load(None)
    assert loaded.providers == ["aws"]
    assert loaded.aws_or_default().regions is None
    assert loaded.store.path == Path("snapshots/baseliner.db")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[aws]\nregions = 42\n", "aws.regions: expected"),
        ('[aws]\nregions = "some"\n', 'aws.regions: expected "all"'),
        ('[aws]\nregions = ["Mars-1"]\n', "aws.regions: not a region name"),
        ("[aws]\nregions = []\n", "aws.regions: empty list"),
        ('[aws]\nregion = "all"\n', "aws.region: unknown key"),
        ("[aws]\nmax_workers = 0\n", "aws.max_workers: expected an integer from 1"),
        ("[aws]\nmax_workers = true\n", "aws.max_workers: expected an integer"),
        ('[[aws.accounts]]\nrole_arn = "arn:aws:iam::111111111111:role/x"\n',
         "aws.accounts[0].name: required"),
        ('[[aws.accounts]]\nname = "a"\nrole_arn = "nope"\n', "aws.accounts[0].role_arn: not an"),
        ('[[aws.accounts]]\nname = "a"\nprofile = "p"\nrole_arn = "arn:aws:iam::1:role/x"\n',
         "not both"),
        ('[[aws.accounts]]\nname = "a"\n[[aws.accounts]]\nname = "a"\n', "duplicate"),
        ("[aws.organization]\n", "aws.organization.role_name: required"),
        ("[storage]\n", "storage: unknown key"),
        ("[store]\npath = 3\n", "store.path: expected a string"),
        ("aws = 1\n", "aws: expected a table"),
        ("[gcp]\n", "gcp: set projects"),
        ('[azure]\ncloud = "mars"\n', "azure.cloud: expected one of"),
        ("this is = = not toml", "not valid TOML"),
    ],
)
def test_bad_configuration_names_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert str(caught.value).startswith(str(tmp_path / "c.toml") + ": ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        config.load(tmp_path / "absent.toml")
