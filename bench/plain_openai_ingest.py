"""The loop a user would write instead of durabatch: the plain-script baseline of `bench_pipeline.py`.

With the official `openai` SDK: retrieve the completed batch, download its whole output file,
parse every line, and `executemany` the rows into a table of its own. No resumability, no
exactly-once on a retry, the whole file in memory; it is the reference for speed and memory.

    python bench/plain_openai_ingest.py --base-url http://127.0.0.1:PORT/v1 \\
        --database-url postgresql://... --provider-batch-id BATCH
"""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg
from openai import AsyncOpenAI

TABLE = """CREATE TABLE IF NOT EXISTS plain_results (
    batch_id text NOT NULL, custom_id text NOT NULL, status_code integer, body jsonb,
    input_tokens integer, output_tokens integer, PRIMARY KEY (batch_id, custom_id))"""


async def plain_ingest(base_url: str, database_url: str, provider_batch_id: str, batch_id: str) -> int:
    """Rows written for the provider batch's results, keyed by `batch_id`."""
    client = AsyncOpenAI(base_url=base_url, api_key="bench-key")
    batch = await client.batches.retrieve(provider_batch_id)
    assert batch.status == "completed" and batch.output_file_id
    content = await client.files.content(batch.output_file_id)
    rows = []
    for line in content.text.splitlines():
        record = json.loads(line)
        response = record["response"]
        body = response["body"]
        usage = body.get("usage") or {}
        rows.append(
            (
                batch_id,
                record["custom_id"],
                response["status_code"],
                json.dumps(body),
                usage.get("prompt_tokens", 0),
                usage.get("completion_tokens", 0),
            )
        )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLE)
        await conn.executemany(
            """INSERT INTO plain_results VALUES ($1, $2, $3, $4::jsonb, $5, $6)
               ON CONFLICT DO NOTHING""",
            rows,
        )
    finally:
        await conn.close()
        await client.close()
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--provider-batch-id", required=True)
    ap.add_argument("--batch-id", default="plain")
    a = ap.parse_args()
    print(asyncio.run(plain_ingest(a.base_url, a.database_url, a.provider_batch_id, a.batch_id)))


if __name__ == "__main__":
    main()
