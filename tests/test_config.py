"""The Streamlit settings the deployment relies on."""
import tomllib
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parent.parent / ".streamlit" / "config.toml"


@pytest.fixture(scope="module")
def config() -> dict:
    return tomllib.loads(CONFIG.read_text())


def test_privacy_and_security(config):
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"]["enableCORS"] is True
    assert config["server"]["headless"] is True


def test_upload_limit_and_file_watcher(config):
    assert config["server"]["maxUploadSize"] == 50
    assert config["server"]["fileWatcherType"] == "none"


def test_error_details_hidden(config):
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["toolbarMode"] == "minimal"


def test_streamlit_accepts_every_value(config, monkeypatch):
    """Streamlit itself parses the file: an unknown option or value would fail here."""
    from streamlit import config as st_config

    monkeypatch.chdir(CONFIG.parent.parent)  # Streamlit reads ./.streamlit/config.toml
    st_config.get_config_options(force_reparse=True, options_from_flags={})
    for section, options in config.items():
        for name, value in options.items():
            assert st_config.get_option(f"{section}.{name}") == value, f"{section}.{name}"
            assert st_config.get_where_defined(f"{section}.{name}") == str(CONFIG), f"{section}.{name}"
    from streamlit.config import ShowErrorDetailsConfigOptions

    assert config["client"]["showErrorDetails"] in {o.value for o in ShowErrorDetailsConfigOptions}
