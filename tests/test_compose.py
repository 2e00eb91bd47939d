"""The structure of docker-compose.yml and the Dockerfile (no Docker engine runs in CI).

What can be checked without starting containers: the services and their images, the start order
(depends_on conditions), that every variable the worker gets is a real setting, that the search
attributes registered are durabatch's, and that the image runs `durabatch worker` as a non-root user.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from durabatch.models import SEARCH_ATTRIBUTES
from durabatch.settings import API_KEY_ENV, Settings

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_SEARCH_ATTRIBUTES = {
    "DurabatchStatus": "Keyword",
    "DurabatchProvider": "Keyword",
    "DurabatchModel": "Keyword",
    "DurabatchRequests": "Int",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def setting_names() -> set[str]:
    """Every environment variable name Settings reads (the first alias of each field)."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices)
        names.update(choice for choice in alias.choices if isinstance(choice, str) and choice.isupper())
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def image_name(service: dict[str, Any]) -> str:
    """`temporalio/server:${TEMPORAL_VERSION:-1.30.1}` -> `temporalio/server`."""
    return str(service["image"]).split(":", 1)[0]


def script(service: dict[str, Any]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else "\n".join(command)


def needs(service: dict[str, Any], other: str, condition: str) -> bool:
    return bool(service.get("depends_on", {}).get(other, {}).get("condition") == condition)


def test_services_and_images(services: dict[str, dict[str, Any]]) -> None:
    assert image_name(services["temporal"]) == "temporalio/server"
    assert image_name(services["temporal-schema"]) == "temporalio/admin-tools"
    assert image_name(services["temporal-namespace"]) == "temporalio/admin-tools"
    assert image_name(services["temporal-ui"]) == "temporalio/ui"
    assert image_name(services["temporal-postgresql"]) == "postgres"
    assert image_name(services["durabatch-postgres"]) == "postgres"
    assert not any("auto-setup" in str(s.get("image", "")) for s in services.values()), "deprecated image"
    for name in ("worker", "emulator"):
        assert services[name]["build"] == "."


def test_temporal_schema_job_sets_up_both_databases(services: dict[str, dict[str, Any]]) -> None:
    job = services["temporal-schema"]
    text = script(job)
    assert "temporal-sql-tool" in text
    for verb in ("setup-schema", "update-schema"):
        assert verb in text
    for database in ("temporal", "temporal_visibility"):
        assert re.search(rf"\b{database}\b", text)
    assert "/temporal/versioned" in text and "/visibility/versioned" in text
    assert needs(job, "temporal-postgresql", "service_healthy")
    assert needs(services["temporal"], "temporal-schema", "service_completed_successfully")
    assert "healthcheck" in services["temporal"]


def test_stores_are_separate(services: dict[str, dict[str, Any]]) -> None:
    temporal_db = environment(services["temporal"])["POSTGRES_SEEDS"]
    worker_url = environment(services["worker"])["DURABATCH_DATABASE_URL"]
    assert temporal_db == "temporal-postgresql"
    assert worker_url.startswith("postgresql://") and "@durabatch-postgres:5432/" in worker_url
    assert environment(services["durabatch-postgres"])["POSTGRES_DB"] == worker_url.rsplit("/", 1)[1]
    for name in ("temporal-postgresql", "durabatch-postgres"):
        assert "pg_isready" in str(services[name]["healthcheck"]["test"])


def test_namespace_job_registers_exactly_durabatchs_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    job = services["temporal-namespace"]
    pairs = environment(job)["SEARCH_ATTRIBUTES"].split()
    registered = dict(pair.split("=", 1) for pair in pairs)
    assert registered == EXPECTED_SEARCH_ATTRIBUTES
    assert registered == {name: kind.capitalize() for name, kind in SEARCH_ATTRIBUTES.items()}
    text = script(job)
    assert "temporal operator namespace create" in text
    assert "temporal operator search-attribute create" in text and "$$SEARCH_ATTRIBUTES" in text
    assert needs(job, "temporal", "service_healthy")
    # The namespace the job creates is the one the workers use.
    assert environment(job)["NAMESPACE"] == environment(services["worker"])["DURABATCH_TEMPORAL_NAMESPACE"]


def test_ui_points_at_temporal(services: dict[str, dict[str, Any]]) -> None:
    ui = services["temporal-ui"]
    assert environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert needs(ui, "temporal", "service_healthy")


def test_two_worker_replicas_start_after_namespace_and_store(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert "profiles" not in worker
    assert needs(worker, "temporal-namespace", "service_completed_successfully")
    assert needs(worker, "durabatch-postgres", "service_healthy")
    assert "container_name" not in worker, "a fixed container name forbids replicas"
    assert "ports" not in worker, "a published host port forbids replicas"
    assert "healthcheck" in worker


def test_worker_environment_uses_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["worker"])
    known = setting_names()
    unknown = {name for name in env if name not in known}
    assert not unknown, f"not settings in durabatch/settings.py: {sorted(unknown)}"
    assert set(API_KEY_ENV.values()) <= set(env)
    for name in (
        "DURABATCH_TEMPORAL_ADDRESS",
        "DURABATCH_TEMPORAL_NAMESPACE",
        "DURABATCH_TASK_QUEUE",
        "DURABATCH_DATABASE_URL",
        "DURABATCH_METRICS_ADDRESS",
    ):
        assert name in env
    assert env["DURABATCH_TEMPORAL_ADDRESS"] == "temporal:7233"
    # API keys come from the host environment, never from the file itself.
    for name in API_KEY_ENV.values():
        assert env[name] == f"${{{name}:-}}"


def test_worker_environment_defaults_are_valid_settings(services: dict[str, dict[str, Any]]) -> None:
    def default(value: str) -> str:
        return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)

    env = {name: default(value) for name, value in environment(services["worker"]).items()}
    settings = Settings.model_validate({k: v for k, v in env.items() if v})
    assert settings.metrics_address.endswith(":9464")
    assert str(settings.data_dir) in " ".join(services["worker"]["volumes"])


def test_emulator_is_an_optional_profile(services: dict[str, dict[str, Any]]) -> None:
    emulator = services["emulator"]
    assert emulator["profiles"] == ["emulator"]
    command = emulator["command"]
    assert command[0] == "emulator"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8080"
    assert "--api-key" in command
    assert "healthcheck" in emulator
    for name, service in services.items():
        if "profiles" not in service:
            assert "emulator" not in service.get("depends_on", {}), f"{name} would need the profile"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    one_shot = {"temporal-schema", "temporal-namespace"}
    for name, service in services.items():
        if name in one_shot:
            assert str(service["restart"]).startswith("on-failure"), name
        elif name != "temporal-ui":
            assert "healthcheck" in service, name


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms and all(image == "python:3.11-slim" for image in froms)
    assert re.search(r"pip (wheel|install)[^\n]*\s\.$", text, re.MULTILINE), "installs the project itself"
    entrypoint = re.search(r"^ENTRYPOINT\s+(.+)$", text, re.MULTILINE)
    cmd = re.search(r"^CMD\s+(.+)$", text, re.MULTILINE)
    assert entrypoint and json.loads(entrypoint.group(1)) == ["durabatch"]
    assert cmd and json.loads(cmd.group(1)) == ["worker"]
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".durabatch", ".env"):
        assert entry in ignored
    for needed in ("pyproject.toml", "durabatch", "workflows", "activities", "worker.py"):
        assert needed not in ignored


def test_deploy_doc_names_every_setting_and_only_real_ones() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    known = setting_names()
    mentioned = set(re.findall(r"\bDURABATCH_[A-Z0-9_]+\b", text))
    assert mentioned <= known, f"docs/deploy.md names variables that are not settings: {mentioned - known}"
    assert known <= mentioned | set(API_KEY_ENV.values()), known - mentioned
    for name, kind in EXPECTED_SEARCH_ATTRIBUTES.items():
        assert re.search(rf"search-attribute create .*--name {name}\s+--type {kind}\b", text), name
