"""The SDK's files and money against a real server: uploads of every format, exports to a
file, a DataFrame and a dataset directory, vendor audits, payments, Label Studio imports."""

import itertools
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.sdk.conftest import LiveServer

from quorum.client import Client, Forbidden, Invalid

SCHEMA = {"questions": [{"name": "verdict", "kind": "choice", "options": ["correct", "wrong"]}]}
PREFERENCE = {
    "questions": [
        {"name": "better", "kind": "preference", "options": ["a", "b"], "prompt_field": "prompt"}
    ]
}
LABEL_STUDIO = Path(__file__).parents[1] / "delivery" / "data" / "label_studio_export.json"
_emails = itertools.count()


def _client(server: LiveServer, *, admin: bool = False) -> Client:
    return Client(server.url, server.token_for(f"data{next(_emails)}@example.com", admin=admin))


def test_uploads_from_files_of_every_format(live_server: LiveServer, tmp_path: Path) -> None:
    files = {
        "tasks.json": b'[{"external_id": "j1", "data": {"q": "one"}}]',
        "tasks.ndjson": b'{"external_id": "n1", "data": {"q": "two"}}\n',
        "tasks.csv": b"external_id,q\nc1,three\nc2,four\n",
    }
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    pq.write_table(pa.table({"external_id": ["p1"], "q": ["five"]}), tmp_path / "tasks.parquet")
    with _client(live_server) as client:
        project = client.create_project("files", schema=SCHEMA)
        created = [
            client.upload_tasks(project["id"], tmp_path / n)["created"] for n in sorted(files)
        ]
        created.append(
            client.upload_tasks(project["id"], str(tmp_path / "tasks.parquet"))["created"]
        )
        assert created == [2, 1, 1, 1]
        (tmp_path / "bad.csv").write_bytes(b"external_id,q\nc1,again\n")
        with pytest.raises(Invalid) as error:
            client.upload_tasks(project["id"], tmp_path / "bad.csv")
        assert error.value.details[0]["line"] == 2
        assert client.upload_tasks(project["id"], tmp_path / "bad.csv", on_conflict="skip") == {
            "created": 0,
            "skipped": 1,
        }


def test_exports_to_a_file_a_dataframe_and_a_dataset(
    live_server: LiveServer, tmp_path: Path
) -> None:
    with _client(live_server) as client:
        project = client.create_project("prefs", schema=PREFERENCE)
        tasks = [{"data": {"prompt": f"p{i}", "a": f"A{i}", "b": f"B{i}"}} for i in range(3)]
        client.upload_tasks(project["id"], tasks)
        while (lease := client.next(project["id"])) is not None:
            client.submit(lease["assignment_id"], {"better": "b"})
        written = client.export(project["id"], tmp_path / "rows.jsonl")
        assert len(written.read_text().splitlines()) == 3
        frame = client.export_dataframe(project["id"], complete_only=True)
        assert list(frame["n_labels"]) == [1, 1, 1]
        pairs = datasets.load_from_disk(
            str(client.export(project["id"], tmp_path / "dpo", format="dpo"))
        )
        assert sorted(pairs["chosen"]) == ["B0", "B1", "B2"]
        assert (tmp_path / "dpo" / "README.md").exists()
        with pytest.raises(Invalid, match="text question"):
            client.export(project["id"], tmp_path / "sft", format="sft")


def test_an_sft_delivery_with_its_prompt_field(live_server: LiveServer, tmp_path: Path) -> None:
    text = {"questions": [{"name": "answer", "kind": "text"}]}
    with _client(live_server) as client:
        project = client.create_project("sft", schema=text)
        client.upload_tasks(project["id"], [{"data": {"question": "What is 2 + 2?"}}])
        lease = client.next(project["id"])
        assert lease is not None
        client.submit(lease["assignment_id"], {"answer": "Four."})
        client.export(project["id"], tmp_path / "sft", format="sft", prompt_field="question")
        rows = datasets.load_from_disk(str(tmp_path / "sft"))
        assert (rows["prompt"], rows["completion"]) == (["What is 2 + 2?"], ["Four."])


def test_audits_and_payments(live_server: LiveServer, tmp_path: Path) -> None:
    with _client(live_server, admin=True) as owner, _client(live_server) as expert:
        policy = {"pay_per_task_cents": 30, "budget_cents": 60}
        project = owner.create_project("audit", schema=SCHEMA, policy=policy)
        owner.add_member(project["id"], expert.me()["email"], "annotator")
        owner.upload_tasks(
            project["id"], [{"external_id": f"t{i}", "data": {"i": i}} for i in range(6)]
        )
        rows = [{"external_id": f"t{i}", "answers": {"verdict": "correct"}} for i in range(6)]
        assert (
            owner.deliver_vendor_labels(project["id"], "Acme", rows, price_cents_per_label=9)[
                "created"
            ]
            == 6
        )
        csv = tmp_path / "beta.csv"
        csv.write_text("external_id,verdict\n" + "".join(f"t{i},wrong\n" for i in range(6)))
        assert owner.deliver_vendor_labels(project["id"], "Beta", csv)["created"] == 6
        assert [v["name"] for v in owner.vendors(project["id"])] == ["Acme", "Beta"]
        drawn = owner.draw_audit_sample(project["id"], width=0.5, seed=1)
        assert [d["total"] for d in drawn] == [d["target"] for d in drawn]
        labelled = 0
        while (lease := expert.next(project["id"])) is not None:
            expert.submit(lease["assignment_id"], {"verdict": "correct"})
            labelled += 1
        assert labelled == 2  # the budget pays for two labels: then `next` has nothing
        report = owner.audit_report(project["id"])
        assert [v["vendor"] for v in report["vendors"]][0] == "Acme"
        assert all(0 < v["covered"] <= v["delivered"] for v in report["vendors"] if v["checked"])
        with pytest.raises(Forbidden):
            expert.audit_report(project["id"])
        spend = owner.spend(project["id"])
        assert (spend["budget_cents"], spend["committed_cents"], spend["left_cents"]) == (60, 60, 0)
        email = expert.me()["email"]
        owner.grant(project["id"], email, 15, "first week")
        assert [e["kind"] for e in owner.ledger(project["id"])][-1] == "bonus"
        assert expert.statement()["totals"]["bonuses"] == 15
        assert owner.pay_out("2020-01") == []
        assert owner.payout_csv("2020-01").startswith("period,user_id")


def test_label_studio_import(live_server: LiveServer) -> None:
    schema = {
        "questions": [
            {"name": "sentiment", "kind": "choice", "options": ["Positive", "Negative", "Neutral"]},
            {
                "name": "topics",
                "kind": "multi_choice",
                "options": ["health", "people"],
                "required": False,
            },
            {"name": "quality", "kind": "rating", "min": 1, "max": 5, "required": False},
            {
                "name": "entities",
                "kind": "spans",
                "field": "text",
                "labels": ["PER", "ORG", "LOC"],
                "required": False,
            },
            {"name": "summary", "kind": "text", "required": False},
        ]
    }
    with _client(live_server) as client:
        project = client.create_project("moved", schema=schema)
        result = client.import_label_studio(project["id"], LABEL_STUDIO)
        assert (result["tasks"], result["annotations"]) == (4, 4)
        assert len(list(client.annotations(project["id"]))) == 4
