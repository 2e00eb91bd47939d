"""Span names carry path templates, never ids: ids of every shape become `{id}`."""

from __future__ import annotations

import pytest

from durabatch.providers.http_tracing import path_template


@pytest.mark.parametrize(
    ("url", "template"),
    [
        ("https://api.openai.com/v1/files/file-CvxhkPhnYMTyBGojBfKjPG/content", "/v1/files/{id}/content"),
        ("https://api.openai.com/v1/files/file-abc123/content", "/v1/files/{id}/content"),
        ("https://api.openai.com/v1/batches/batch_6721a0/cancel", "/v1/batches/{id}/cancel"),
        ("https://api.anthropic.com/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d/results",
         "/v1/messages/batches/{id}/results"),
        ("https://g/v1beta/models/gemini-2.0-flash:batchGenerateContent?key=secret",
         "/v1beta/models/{id}:batchGenerateContent"),
        ("https://g/v1beta/files/abcdefghijkl:download", "/v1beta/files/{id}:download"),
        ("https://g/upload/v1beta/files", "/upload/v1beta/files"),
        ("https://api.openai.com/v1/batches", "/v1/batches"),
    ],
)  # fmt: skip
def test_ids_become_placeholders(url: str, template: str) -> None:
    assert path_template(url) == template
