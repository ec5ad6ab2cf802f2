"""Savepoints through the Flink REST API of a job's JobManager, before a stateful upgrade."""

from __future__ import annotations

import asyncio
import time

import aiohttp


class SavepointError(Exception):
    pass


async def take_savepoint(base_url: str, timeout_s: float = 300, target_directory: str | None = None) -> str | None:
    """Trigger a savepoint of the running job and wait for it; returns its location.
    None when no job is running (nothing to preserve, e.g. the first deployment crashed)."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url, timeout=timeout) as session:
        async with session.get("/jobs/overview") as response:
            response.raise_for_status()
            jobs = (await response.json()).get("jobs", [])
        running = [job["jid"] for job in jobs if job.get("state") == "RUNNING"]
        if not running:
            return None
        job_id = running[0]
        body = {"cancel-job": False, "formatType": "CANONICAL"}
        if target_directory:
            body["target-directory"] = target_directory
        async with session.post(f"/jobs/{job_id}/savepoints", json=body) as response:
            if response.status >= 400:
                raise SavepointError(f"trigger for job {job_id} refused: {response.status} {await response.text()}")
            trigger = (await response.json())["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            async with session.get(f"/jobs/{job_id}/savepoints/{trigger}") as response:
                response.raise_for_status()
                state = await response.json()
            if state.get("status", {}).get("id") == "COMPLETED":
                operation = state.get("operation", {})
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("class", "unknown")
                    raise SavepointError(f"savepoint of job {job_id} failed: {cause}")
                return operation["location"]
            await asyncio.sleep(0.5)
        raise SavepointError(f"savepoint of job {job_id} not completed within {timeout_s:.0f} s")
