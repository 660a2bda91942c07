"""The Python SDK against a real server: the README's tour, errors, pagination, retries."""

import itertools

import httpx
import pytest
from tests.sdk.conftest import LiveServer

from quorum.client import Client, Conflict, Forbidden, Invalid, NotFound, Unauthorized

SCHEMA = {"questions": [{"name": "verdict", "kind": "choice", "options": ["correct", "wrong"]}]}
_emails = itertools.count()


def _client(server: LiveServer, **options: object) -> Client:
    return Client(server.url, server.token_for(f"sdk{next(_emails)}@example.com"), **options)  # type: ignore[arg-type]


def test_tour(live_server: LiveServer) -> None:
    with _client(live_server) as client:
        project = client.create_project(
            "Is the answer correct?", schema=SCHEMA, policy={"overlap": 1}
        )
        tasks = [{"external_id": f"q{i}", "data": {"question": f"question {i}"}} for i in range(3)]
        assert client.upload_tasks(project["id"], tasks) == {"created": 3, "skipped": 0}
        labelled = 0
        while (lease := client.next(project["id"])) is not None:
            client.submit(lease["assignment_id"], {"verdict": "correct"}, duration_ms=900)
            labelled += 1
        assert labelled == 3
        assert client.stats(project["id"])["complete"] == 3
        assert len(list(client.annotations(project["id"]))) == 3


def test_errors_mirror_the_api(live_server: LiveServer) -> None:
    with _client(live_server) as client:
        with pytest.raises(Invalid) as invalid:
            client.create_project("x", schema={"questions": []})
        assert invalid.value.status == 422
        assert invalid.value.details[0]["field"] == "schema.questions"
        with pytest.raises(NotFound):
            client.project(10**12)
        project = client.create_project("p", schema=SCHEMA)
        with pytest.raises(Invalid) as bad_line:
            client.upload_tasks(
                project["id"], [{"data": {}}, {"data": {}, "gold": {"verdict": "maybe"}}]
            )
        assert bad_line.value.details[0]["line"] == 2
        lease = None
        client.upload_tasks(project["id"], [{"data": {"n": 1}}])
        lease = client.next(project["id"])
        assert lease is not None
        client.submit(lease["assignment_id"], {"verdict": "wrong"})
        with pytest.raises(Conflict):
            client.submit(lease["assignment_id"], {"verdict": "wrong"})
    with _client(live_server) as stranger, pytest.raises(NotFound):
        stranger.stats(project["id"])
    with Client(live_server.url, "qrm_wrong") as anonymous, pytest.raises(Unauthorized):
        anonymous.me()


def test_member_roles(live_server: LiveServer) -> None:
    with _client(live_server) as owner, _client(live_server) as annotator:
        project = owner.create_project("p", schema=SCHEMA)
        owner.add_member(project["id"], annotator.me()["email"], "annotator")
        with pytest.raises(Forbidden):
            annotator.stats(project["id"])
        assert [m["role"] for m in owner.members(project["id"])] == ["owner", "annotator"]


def test_lists_follow_every_page(live_server: LiveServer) -> None:
    with _client(live_server) as client:
        project = client.create_project("p", schema=SCHEMA)
        client.upload_tasks(project["id"], ({"data": {"n": i}} for i in range(250)))
        assert [t["data"]["n"] for t in client.tasks(project["id"], limit=100)] == list(range(250))


class DropFirstSubmitReply(httpx.BaseTransport):
    """Delivers the first submit to the server, then loses its reply, as a flaky network does."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = False
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/submit"):
            self.keys.append(request.headers["Idempotency-Key"])
            if not self.dropped:
                self.dropped = True
                response.read()
                raise httpx.ReadError("connection reset", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retried_submit_is_recorded_once(live_server: LiveServer) -> None:
    transport = DropFirstSubmitReply()
    with _client(live_server, transport=transport, backoff=0.01) as client:
        project = client.create_project("p", schema=SCHEMA, policy={"overlap": 1})
        client.upload_tasks(project["id"], [{"data": {"n": 1}}, {"data": {"n": 2}}])
        lease = client.next(project["id"])
        assert lease is not None
        annotation = client.submit(lease["assignment_id"], {"verdict": "correct"})
        assert annotation["answers"] == {"verdict": "correct"}
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1]
        assert client.stats(project["id"])["labels"] == 1
