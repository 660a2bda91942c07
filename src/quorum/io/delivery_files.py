"""Writing a delivery as a Hugging Face ``datasets`` dataset with its dataset card.

``write_delivery`` saves the rows with ``Dataset.save_to_disk`` (Arrow files, typed features
from the Arrow schema) plus a ``README.md`` card, into a directory that appears only once it is
complete; ``stream_delivery_zip`` sends the same directory as a zip (the API and the web app).
``datasets`` is imported when a delivery is written: it takes a second to import.
"""

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from quorum.domain.deliveries import CardFacts, Delivery
from quorum.io.modes import as_created

CHUNK = 1 << 20
METHODS = {
    "mv": "majority vote",
    "wawa": "Wawa (majority vote weighted by agreement with the majority)",
    "zbs": "zero-based skill",
    "ds": "Dawid–Skene (a confusion matrix per annotator, fitted by EM)",
    "ods": "one-coin Dawid–Skene",
    "glad": "GLAD (annotator skill and task difficulty)",
    "mace": "MACE (annotator competence and spamming)",
    "auto": "the method Quorum chose for the data",
}
FIELDS = {
    "hf": "every task: `task_id`, `external_id`, `data` (JSON text), `gold`, `n_labels`, "
    "`answers` (aggregated, by question), `confidence` (by question), `annotations` "
    "(`annotator` pseudonym, `tier`, `answers`, `submitted_at`, `duration_ms`), `method`",
    "dpo": "`prompt`, `chosen`, `rejected` (the preferred and the other response), `question`, "
    "`confidence` (posterior of the preference), `method`, `task_id`, `external_id`, "
    "`annotations` (`annotator` pseudonym, `tier`, `answer`, `submitted_at`)",
    "sft": "`prompt`, `completion`, `question`, `confidence` (1 when a reviewer accepted or "
    "corrected it, else null), `source` (`annotator` or `reviewer correction`), "
    "`review_status`, `annotator` pseudonym, `tier`, `submitted_at`, `task_id`, `external_id`",
}


def write_delivery(
    delivery: Delivery, directory: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Save the delivery into ``directory`` (new, or empty); returns the number of rows."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ValueError(f"{directory} exists and is not an empty directory")
    parent = directory.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"{directory}: no such directory {parent}")
    building = Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}.", suffix=".part"))
    try:
        rows = _save(delivery, building, progress)
        as_created(building, directory=True)
        if directory.exists():
            directory.rmdir()
        os.replace(building, directory)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return rows


def _save(delivery: Delivery, directory: Path, progress: Callable[[int], None] | None) -> int:
    import datasets
    from datasets.table import InMemoryTable

    datasets.disable_progress_bars()
    batches = []
    for batch in delivery.batches():
        batches.append(batch)
        if progress is not None:
            progress(batch.num_rows)
    # NOTE: with no rows, an empty chunk per column: `datasets` cannot cast zero chunks.
    table = (
        pa.Table.from_batches(batches, schema=delivery.schema)
        if batches
        else delivery.schema.empty_table()
    )
    info = datasets.DatasetInfo(
        description=f"Quorum {delivery.kind} delivery of project {delivery.facts.project!r}",
        features=datasets.Features.from_arrow_schema(delivery.schema),
    )
    dataset = datasets.Dataset(InMemoryTable(table), info=info)
    # NOTE: `datasets` shards by rows and, for zero rows, writes zero shards: a directory that
    # `load_from_disk` then fails to read (IndexError). One shard holds the empty table.
    dataset.save_to_disk(str(directory), num_shards=None if table.num_rows else 1)
    (directory / "README.md").write_text(dataset_card(delivery.facts), encoding="utf-8")
    return int(table.num_rows)


def stream_delivery_zip(delivery: Delivery) -> Iterator[bytes]:
    """The delivery's directory as a zip file, in chunks; built in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="quorum-delivery-") as scratch:
        folder = Path(scratch) / "dataset"
        write_delivery(delivery, folder)
        archive = Path(scratch) / "dataset.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(folder.rglob("*")):
                zipped.write(path, path.relative_to(folder))
        with archive.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk


def dataset_card(facts: CardFacts) -> str:
    """The ``README.md`` of a delivery: counts, label distribution, agreement, annotators by
    domain, the aggregation method, and what the fields hold."""
    lines = [
        "---",
        f"pretty_name: {_yaml_text(facts.project)}",
        f"tags: [quorum, human-labeled, {facts.kind}]",
        "---",
        "",
        f"# {facts.project}",
        "",
        f"A `{facts.kind}` delivery of Quorum project {facts.project_id}, written "
        f"{facts.created_at:%Y-%m-%d %H:%M} UTC. Load it with "
        "`datasets.load_from_disk(path)`.",
        "",
        "## Counts",
        "",
        f"- rows: {facts.rows}",
        f"- labels in the project (rejected in review and paused annotators' left out): "
        f"{facts.labels}",
        f"- annotators: {facts.annotators}",
    ]
    lines += [f"- left out ({why}): {n}" for why, n in sorted(facts.left_out.items())]
    lines += ["", "## Fields", "", FIELDS[facts.kind] + ".", ""]
    lines += _distributions(facts) + _agreement(facts) + _domains(facts)
    lines += [
        "## Aggregation",
        "",
        f"Answers and confidences come from `{facts.method}`: "
        f"{METHODS.get(facts.method, facts.method)}, over every label not rejected in review "
        "and not of an annotator paused in the project, with gold answers clamped. A "
        "confidence is the posterior probability of the answer given (docs/truth.md).",
        "",
        "## Provenance",
        "",
        "Annotators appear as stable pseudonyms (`a_…`), never as names or emails; `tier` is "
        "their workforce tier (1–3) when the delivery was written; times are UTC.",
        "",
    ]
    return "\n".join(lines)


def _yaml_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _distributions(facts: CardFacts) -> list[str]:
    if not facts.distributions:
        return []
    lines = ["## Label distribution", ""]
    for question, counts in facts.distributions.items():
        total = sum(counts.values())
        lines += [f"`{question}`:", "", "| value | rows | share |", "| --- | ---: | ---: |"]
        lines += [
            f"| {_cell(value)} | {n} | {n / total:.1%} |" for value, n in counts.most_common()
        ]
        lines.append("")
    return lines


def _agreement(facts: CardFacts) -> list[str]:
    measured = [a for a in facts.agreement if a.value is not None or a.percent is not None]
    if not measured:
        return ["## Agreement", "", "Not measured: no task has two labels of one question.", ""]
    lines = [
        "## Agreement",
        "",
        "| question | metric | value (95% interval) | pairs agreeing | tasks |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for a in measured:
        value = "—" if a.value is None else f"{a.value:.3f}"
        if a.value is not None and a.low is not None and a.high is not None:
            value += f" ({a.low:.3f}, {a.high:.3f})"
        percent = "—" if a.percent is None else f"{a.percent:.1%}"
        lines.append(f"| `{a.question}` | {a.metric} | {value} | {percent} | {a.tasks} |")
    return [*lines, ""]


def _domains(facts: CardFacts) -> list[str]:
    lines = ["## Annotators by domain", ""]
    if not facts.annotators_by_domain:
        return [*lines, "No labels, so no annotators.", ""]
    lines += ["| domain | annotators |", "| --- | ---: |"]
    lines += [f"| {_cell(d)} | {n} |" for d, n in facts.annotators_by_domain.items()]
    note = (
        "Domains are those of the annotators' workforce profiles; an annotator with several "
        "counts once in each."
    )
    return [*lines, "", note, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
