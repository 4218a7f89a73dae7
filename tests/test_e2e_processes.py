"""Several HTTP server processes on one port give the same answers as one: an event put
through one process changes the very next answer of another, and a crash of `serve` takes
every process with it so a restart can take the port.

Requests go over raw HTTP keep-alive connections (the server needs no signature on
loopback when it has no credentials), one per process, told apart by the
x-openpersonalize-process header every reply carries.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any

from helpers import (
    active_campaign,
    active_dataset,
    active_group,
    run_import,
    schema,
    trained_version,
    unique,
)
from test_e2e_solutions import interactions_csv

from openpersonalize.testing.server import ServerProcess, wait_for_status

PROCESSES = 2


def _post(connection: http.client.HTTPConnection, path: str, body: dict) -> tuple[str, Any]:
    connection.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    reply = connection.getresponse()
    payload = reply.read()
    assert reply.status == 200, (reply.status, payload)
    return reply.getheader("x-openpersonalize-process") or "", json.loads(payload or b"{}")


def _connection_per_process(port: int) -> dict[str, http.client.HTTPConnection]:
    """Open connections side by side until each process has answered one."""
    found: dict[str, http.client.HTTPConnection] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 30

    def open_some() -> None:
        while time.monotonic() < deadline:
            with lock:
                if len(found) == PROCESSES:
                    return
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/health")
            reply = connection.getresponse()
            reply.read()
            process = reply.getheader("x-openpersonalize-process") or ""
            with lock:
                if process not in found:
                    found[process] = connection
                    continue
            connection.close()

    threads = [threading.Thread(target=open_some) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == PROCESSES, f"only processes {sorted(found)} answered"
    return found


def test_processes_share_streamed_events_and_die_with_serve(tmp_path: Path) -> None:
    s3_root = tmp_path / "s3"
    (s3_root / "data").mkdir(parents=True)
    (s3_root / "data" / "interactions.csv").write_text(interactions_csv())
    server = ServerProcess(
        tmp_path / "server",
        settings={"s3_local_root": str(s3_root), "http_processes": str(PROCESSES)},
        access_key_id="",
        secret_access_key="",
    ).start()
    try:
        personalize = server.client(aws_access_key_id="x", aws_secret_access_key="x")
        group = active_group(personalize)
        dataset = active_dataset(personalize, group, schema(personalize))
        assert run_import(personalize, dataset, "s3://data/interactions.csv")["status"] == "ACTIVE"
        tracker = personalize.create_event_tracker(name=unique("tracker"), datasetGroupArn=group)
        version = trained_version(personalize, group, "aws-user-personalization")
        campaign = active_campaign(
            personalize,
            version,
            campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}},
        )
        clicked = personalize.create_filter(
            name=unique("filter"),
            datasetGroupArn=group,
            filterExpression='EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch")',
        )["filterArn"]
        wait_for_status(personalize.describe_filter, "filter", "filterArn", clicked)

        first, second = _connection_per_process(server.port).values()
        ask = {"campaignArn": campaign, "userId": "u7", "numResults": 10, "filterArn": clicked}
        _, answer = _post(second, "/recommendations", ask)  # the second process looks first
        top = answer["itemList"][0]["itemId"]
        _, _ = _post(
            first,
            "/events",
            {
                "trackingId": tracker["trackingId"],
                "userId": "u7",
                "sessionId": "s7",
                "eventList": [{"eventType": "watch", "itemId": top, "sentAt": 1_700_000_000}],
            },
        )
        _, answer = _post(second, "/recommendations", ask)
        assert top not in [entry["itemId"] for entry in answer["itemList"]]
    finally:
        server.kill()  # returns once no process holds the port any more
    server.start()  # the same port, taken again
    server.stop()
