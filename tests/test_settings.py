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
    assert s.sticky_timeout_seconds == 10.0


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


def test_queue_token_limits_are_a_json_map_in_the_environment() -> None:
    s = load_settings({"DURABATCH_OPENAI_QUEUE_TOKENS": '{"gpt-4o-mini": 2000000, "gpt-4o": 90000}'})
    assert s.openai_queue_tokens == {"gpt-4o-mini": 2000000, "gpt-4o": 90000}
    assert load_settings({"DURABATCH_GEMINI_QUEUE_TOKENS": " "}).gemini_queue_tokens == {}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DURABATCH_TEMPORAL_ADDRESS", "no-port"),
        ("DURABATCH_TEMPORAL_ADDRESS", "host:99999"),
        ("DURABATCH_DATABASE_URL", "mysql://db/x"),
        ("DURABATCH_OPENAI_BASE_URL", "api.openai.com"),
        ("DURABATCH_TASK_QUEUE", "  "),
        ("DURABATCH_LOG_LEVEL", "LOUD"),
        ("DURABATCH_TEMPORAL_TLS_CERT", "/no/such/client.pem"),
        ("DURABATCH_TEMPORAL_TLS_CA", "/no/such/ca.pem"),
        ("DURABATCH_TEMPORAL_TLS", "maybe"),
        ("DURABATCH_STICKY_TIMEOUT_SECONDS", "0"),
        ("DURABATCH_OPENAI_QUEUE_TOKENS", "gpt-4o-mini=2000000"),
        ("DURABATCH_ANTHROPIC_QUEUE_TOKENS", '{"claude-haiku-4-5": "lots"}'),
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


def test_temporal_tls_and_api_key_for_temporal_cloud(tmp_path: Path) -> None:
    from temporalio.service import TLSConfig

    from durabatch.temporal import tls_config

    assert tls_config(load_settings({})) is False
    cloud = load_settings({"DURABATCH_TEMPORAL_API_KEY": "tc-key-123"})
    assert tls_config(cloud) is True, "an API key implies TLS with the system roots"
    assert "tc-key-123" not in repr(cloud)

    cert, key, ca = tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem"
    for path in (cert, key, ca):
        path.write_bytes(f"-----PEM {path.name}-----".encode())
    mtls = tls_config(
        load_settings(
            {
                "DURABATCH_TEMPORAL_TLS_CERT": str(cert),
                "DURABATCH_TEMPORAL_TLS_KEY": str(key),
                "DURABATCH_TEMPORAL_TLS_CA": str(ca),
            }
        )
    )
    assert isinstance(mtls, TLSConfig)
    assert mtls.client_cert == cert.read_bytes() and mtls.client_private_key == key.read_bytes()
    assert mtls.server_root_ca_cert == ca.read_bytes()

    with pytest.raises(SettingsError) as err:
        load_settings({"DURABATCH_TEMPORAL_TLS_CERT": str(cert)})
    assert "DURABATCH_TEMPORAL_TLS_KEY" in str(err.value) and "together" in str(err.value)
