"""Kernel caps (issue #14): who may start kernels on join, how many run, when idle ones stop.

Real server, real marimo kernels; few at a time (the test machine has 2 cores). Several people
(tests/identities.py): rita runner, eddie editor, vera viewer; on a plain server (no `people`
mark) the server's token is its owner.
"""

from __future__ import annotations

import shutil

import pytest

from marimo_collab_ext.client import CollabClient
from marimo_collab_ext.client.client import CollabError

from .test_kernel_protocol import TIMEOUT, wait_for_output
from .test_mirror import until


def caps(server):
    """The server's count of running kernels (marimo_collab_ext/room/kernel_caps.py)."""
    return server["app"].web_app.settings["marimo_collab"].room_manager.kernel_caps


@pytest.fixture
def other(jp_root_dir, notebook) -> str:
    """A second notebook (a copy of the example) beside `notebook`."""
    shutil.copy(jp_root_dir / notebook, jp_root_dir / "other.py")
    return "other.py"


async def run_all(client: CollabClient) -> None:
    """Run every cell and wait for the sum of squares (the last computed output)."""
    await client.run(client.order)
    await wait_for_output(client, client.order[4], "55")


async def refused(client: CollabClient) -> str:
    """The kernel_error message of a run that would start a kernel."""
    with pytest.raises(CollabError) as error:
        await client.run(client.order)
    assert error.value.code == "kernel_error"
    return error.value.response["error"]["message"]


@pytest.mark.people
@pytest.mark.parametrize("collab_settings", [{"kernel_start_on_join": True}])
async def test_start_on_join_starts_a_kernel_for_a_runner_only(connect, server):
    vera = await connect(token="vera-token")
    await vera.request({"type": "heartbeat"})  # her join's start, if any, has begun by now
    eddie = await connect(token="eddie-token")
    assert eddie.join_response["kernel"]["status"] == "none"
    await eddie.request({"type": "heartbeat"})
    assert len(caps(server)) == 0
    rita = await connect(token="rita-token")
    assert rita.join_response["kernel"]["status"] == "none"
    await rita.next_event(lambda e: e["type"] == "kernel_status" and e["status"] == "ready",
                          TIMEOUT)
    assert caps(server).started_by("rita") == 1


@pytest.mark.people
@pytest.mark.parametrize("collab_settings", [{"kernel_max_per_user": 1,
                                              "kernel_idle_timeout": 0.2}])
async def test_a_person_starts_at_most_kernel_max_per_user_kernels(connect, server, other):
    first = await connect(token="rita-token")
    second = await connect(other, token="rita-token")
    await first.run(first.order[:1])
    message = await refused(second)
    assert "c.MarimoCollab.kernel_max_per_user = 1" in message
    await first.run(first.order[:1])  # her running kernel runs on
    # Only kernels that still run count: once the first stops (nobody left in its room),
    # she may start another.
    await first.close()
    await until(lambda: len(caps(server)) == 0, TIMEOUT, "the first kernel to stop")
    await run_all(second)


@pytest.mark.people
@pytest.mark.parametrize("collab_settings", [{"kernel_max": 1, "kernel_max_per_user": 0}])
async def test_the_server_runs_at_most_kernel_max_kernels(connect, server, other):
    first = await connect(token="rita-token")
    second = await connect(other, token="rita-token")
    await first.run(first.order[:1])
    assert "c.MarimoCollab.kernel_max = 1" in await refused(second)
    assert len(caps(server)) == 1


@pytest.mark.people
@pytest.mark.parametrize("collab_settings", [{"kernel_max_per_user": 1, "kernel_max": 0}])
async def test_a_kernel_nobody_is_with_gives_its_place_up_before_anyone_is_refused(
        connect, server, other):
    # A person trying notebooks one after another (tutorials): each kernel outlives its room by
    # kernel_idle_timeout (600 s), yet the next notebook must not be refused.
    first = await connect(token="rita-token")
    await first.run(first.order[:1])
    await first.close()
    await until(lambda: len(server["app"].web_app.settings["marimo_collab"].room_manager
                            .rooms["demo.py"].presence) == 0, TIMEOUT, "her leaving")
    second = await connect(other, token="rita-token")
    await run_all(second)
    assert caps(server).started_by("rita") == 1
    # A kernel someone is still with keeps its place: then the cap refuses.
    third = await connect(token="rita-token")
    assert "c.MarimoCollab.kernel_max_per_user = 1" in await refused(third)


@pytest.mark.parametrize("collab_settings", [{"kernel_max": 1, "kernel_max_per_user": 1}])
async def test_the_owner_is_never_refused_a_kernel_but_counts(connect, server, other):
    first, second = await connect(), await connect(other)
    await first.run(first.order[:1])
    await run_all(second)
    assert len(caps(server)) == 2


@pytest.mark.parametrize("collab_settings", [{"kernel_cull_idle_timeout": 1.5}])
async def test_an_idle_kernel_is_stopped_with_people_in_the_room_and_runs_again(connect):
    client = await connect()
    first = client.order[0]
    # A run longer than the idle timeout is not cut short: only idle time counts.
    client.edit(first, {"from": 0, "insert": "import time\ntime.sleep(3)\nprint('slept')\n"})
    await client.flush()
    await client.run([first])
    event = await client.next_event(
        lambda e: e["type"] == "kernel_status" and e["status"] in ("stopped", "dead")
        or e["type"] == "kernel" and "slept" in str(e["data"].get("console")), TIMEOUT)
    assert event["type"] == "kernel", f"the kernel stopped mid-run: {event}"

    stopped = await client.next_event(lambda e: e["type"] == "kernel_status"
                                      and e["status"] == "stopped", TIMEOUT)
    assert "kernel_cull_idle_timeout" in stopped["message"]
    await run_all(client)  # the next run starts it again
