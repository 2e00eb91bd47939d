"""Settings: the documented variable names and defaults, and errors that name the bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from durabatch.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s.temporal_address == "localhost:7233"
    assert s.temporal_namespace == "default"
    assert s.task_queue == "durabatch"
    assert s.database_url == ""
    assert s.data_dir == Path(".durabatch")
    assert s.openai_base_url == "https://api.openai.com/v1"
    assert s.anthropic_base_url == "https://api.anthropic.com"
    assert s.gemini_base_url == "https://generativelanguage.googleapis.com"


def test_every_documented_variable_is_read() -> None:
    s = load_settings(
        {
            "DURABATCH_TEMPORAL_ADDRESS": "temporal.internal:7233",
            "DURABATCH_TEMPORAL_NAMESPACE": "batches",
            "DURABATCH_TASK_QUEUE": "llm",
            "DURABATCH_DATABASE_URL": "postgresql://u:p@db:5432/durabatch",
            "DURABATCH_DATA_DIR": "/var/lib/durabatch",
            "DURABATCH_OPENAI_BASE_URL": "https://example.openai.azure.com/openai/v1/",
            "DURABATCH_ANTHROPIC_BASE_URL": "http://127.0.0.1:9000",
            "DURABATCH_GEMINI_BASE_URL": "http://127.0.0.1:9001",
            "OPENAI_API_KEY": "k1",
            "ANTHROPIC_API_KEY": "k2",
            "GEMINI_API_KEY": "k3",
        }
    )
    assert (s.temporal_address, s.temporal_namespace, s.task_queue) == (
        "temporal.internal:7233",
        "batches",
        "llm",
    )
    assert s.database_url.endswith("/durabatch") and s.data_dir == Path("/var/lib/durabatch")
    assert s.openai_base_url == "https://example.openai.azure.com/openai/v1"  # trailing slash dropped
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == "k1"
    assert "k1" not in repr(s)  # keys are secrets: never printed


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DURABATCH_TEMPORAL_ADDRESS", "no-port"),
        ("DURABATCH_TEMPORAL_ADDRESS", "host:99999"),
        ("DURABATCH_DATABASE_URL", "mysql://db/x"),
        ("DURABATCH_OPENAI_BASE_URL", "api.openai.com"),
        ("DURABATCH_TASK_QUEUE", "  "),
        ("DURABATCH_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_setting_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({variable: value})
    assert variable in str(err.value)


def test_bad_setting_stops_the_worker_command_with_the_variable_named() -> None:
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [str(bin_dir / "durabatch"), "worker"],
        env={"PATH": "/usr/bin:/bin", "DURABATCH_TEMPORAL_ADDRESS": "nonsense"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "DURABATCH_TEMPORAL_ADDRESS" in proc.stderr
