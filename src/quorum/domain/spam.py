"""Spam and low-effort signals: each flag says why, and sends the label to review.

- **Too fast**: answered in under a quarter of the project's median time (once the project has
  20 timed labels), measured from the ``duration_ms`` the workbench and API report.
- **Straight-lining**: the same answer to a choice, preference or rating question on the
  annotator's last 10 tasks (and every 10 more) when the project's own answers make such a
  run unlikely: the share of that answer to the power of the run is below 1%.
- **Copy-paste**: a free-text answer of 30 characters or more that is a near duplicate (Jaccard
  similarity of character 5-grams at least 0.8) of another label's answer in the project, on
  any task, by anyone. Candidates come from MinHash (32 hashes in 8 bands of 4; a pair at 0.8
  shares a band with probability 0.98), kept as rows (``text_fingerprints``), then the
  similarity is computed exactly.
- **Disagreement with consensus** (checked at each re-aggregation, ``disagreement``): an
  annotator with 20 or more labels on tasks labelled three times or more who agrees with the
  aggregated answer much less often than the project does (a one-sided binomial test at the
  project's rate, p < 0.001, and at least 20 points below it).

The checks are plain functions over rows; :func:`flag` applies them to new labels.
"""

import hashlib
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import binom
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, TextFingerprint
from quorum.db.types import canonical_json
from quorum.domain.questions import (
    ChoiceQuestion,
    PreferenceQuestion,
    QuestionSchema,
    RatingQuestion,
    TextQuestion,
)

FAST_SHARE = 0.25
MIN_TIMED = 20
RUN = 10
RUN_CHANCE = 0.01
TEXT_MIN = 30
SHINGLE = 5
HASHES, BANDS = 32, 8
NEAR = 0.8
CONSENSUS_MIN_LABELS = 20
CONSENSUS_MIN_CROWD = 3
CONSENSUS_P = 0.001
CONSENSUS_GAP = 0.2
RECENT = 2000  # labels a project's typical time and answers are measured on

_RNG = np.random.default_rng(20_260_518)
# Multiply-shift hashing: odd multipliers, arithmetic modulo 2**64, the high bits kept.
_A = _RNG.integers(0, 1 << 63, HASHES, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_B = _RNG.integers(0, 1 << 63, HASHES, dtype=np.uint64)


@dataclass(frozen=True)
class NewLabel:
    annotation_id: int
    task_id: int
    user_id: int
    answers: dict[str, Any]
    duration_ms: int | None


# --- the rules, on plain values --------------------------------------------------------------


def too_fast(duration_ms: int | None, typical: Sequence[int]) -> str | None:
    """Why a label is too fast for the project, or None."""
    if duration_ms is None or len(typical) < MIN_TIMED:
        return None
    median = statistics.median(typical)
    if duration_ms >= FAST_SHARE * median:
        return None
    return (
        f"too fast: answered in {duration_ms / 1000:.1f} s, under a quarter of the project's "
        f"median of {median / 1000:.1f} s"
    )


def straight_line(question: str, answers: Sequence[Any], share: Mapping[str, float]) -> str | None:
    """Why the last of ``answers`` (one annotator's, oldest first) ends a straight line, or None."""
    if not answers or answers[-1] is None:
        return None
    last = _key(answers[-1])
    run = 0
    for value in reversed(answers):
        if value is None or _key(value) != last:
            break
        run += 1
    chance = share.get(last, 0.0) ** run
    if run < RUN or run % RUN or chance >= RUN_CHANCE:
        return None
    return (
        f"straight-lining: the same answer {answers[-1]!r} to {question!r} on {run} tasks in a "
        f"row; {share.get(last, 0.0):.0%} of the project's answers are that "
        f"(chance of such a run {chance:.2%})"
    )


def normal_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def shingles(text: str) -> set[str]:
    clean = normal_text(text)
    return {clean[i : i + SHINGLE] for i in range(max(len(clean) - SHINGLE + 1, 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def bands(text: str) -> list[int]:
    """The MinHash band keys of a text (63-bit integers), equal for near duplicates."""
    grams = sorted(shingles(text))
    digests = (hashlib.blake2b(g.encode(), digest_size=8).digest() for g in grams)
    hashed = np.array([int.from_bytes(d, "big") for d in digests], np.uint64)
    # NOTE: uint64 arrays wrap around on overflow, which is the modulo 2**64 this hash wants.
    mixed = (_A[:, None] * hashed[None, :] + _B[:, None]) >> np.uint64(32)
    signature = mixed.min(axis=1)
    rows = HASHES // BANDS
    keys = []
    for band in range(BANDS):
        part = canonical_json([band, [int(v) for v in signature[band * rows : (band + 1) * rows]]])
        keys.append(int.from_bytes(hashlib.blake2b(part, digest_size=8).digest(), "big") >> 1)
    return keys


def disagreement(
    agreed: Mapping[int, tuple[int, int]],
) -> dict[int, str]:
    """Annotators who agree with the consensus much less than the project (module doc).

    ``agreed`` maps an annotator to (labels agreeing with the consensus, labels compared).
    """
    total = sum(n for _, n in agreed.values())
    if not total:
        return {}
    rate = sum(k for k, _ in agreed.values()) / total
    found = {}
    for user_id, (k, n) in agreed.items():
        if n < CONSENSUS_MIN_LABELS or k / n > rate - CONSENSUS_GAP:
            continue
        p = float(binom.cdf(k, n, rate))
        if p < CONSENSUS_P:
            found[user_id] = (
                f"disagrees with the consensus: agrees on {k} of {n} tasks ({k / n:.0%}); the "
                f"project's annotators agree on {rate:.0%} (p = {p:.1e})"
            )
    return found


def _key(value: Any) -> str:
    return canonical_json(value).decode()


# --- applied to new labels -------------------------------------------------------------------


def flag(
    session: Session, project: Project, schema: QuestionSchema, new: Sequence[NewLabel]
) -> dict[int, list[str]]:
    """The reasons to review each of these new labels (none: not in the result)."""
    reasons: dict[int, list[str]] = defaultdict(list)
    if not new:
        return reasons
    typical, recent = _recent(session, project, max(label.annotation_id for label in new))
    for label in new:
        why = too_fast(label.duration_ms, typical)
        if why:
            reasons[label.annotation_id].append(why)
    choices = [
        q
        for q in schema.questions
        if isinstance(q, ChoiceQuestion | PreferenceQuestion | RatingQuestion)
    ]
    if choices:
        _straight_lines(session, project.id, [q.name for q in choices], new, recent, reasons)
    for question in (q for q in schema.questions if isinstance(q, TextQuestion)):
        _copies(session, project.id, question.name, new, reasons)
    return reasons


# NOTE: a project's typical times and answers move slowly; each process keeps them for
# ``REFRESH`` labels instead of reading 2,000 labels back for every tick.
REFRESH = 500
_RECENT: dict[tuple[int, datetime], tuple[int, list[int], list[dict[str, Any]]]] = {}


def _recent(
    session: Session, project: Project, newest: int
) -> tuple[list[int], list[dict[str, Any]]]:
    """The project's recent durations and answers (each over its last ``RECENT`` labels)."""
    project_id, key = project.id, (project.id, project.created_at)  # ids recur across databases
    cached = _RECENT.get(key)
    # NOTE: only a full window is kept: a young project's figures change with every label, and
    # a stale short window would keep its too-fast check off (under MIN_TIMED) for 500 labels.
    full = cached is not None and len(cached[2]) >= RECENT
    if cached is not None and full and 0 <= newest - cached[0] < REFRESH:
        return cached[1], cached[2]
    durations = session.scalars(
        select(Annotation.duration_ms)
        .where(Annotation.project_id == project_id, Annotation.duration_ms.is_not(None))
        .order_by(Annotation.id.desc())
        .limit(RECENT)
    ).all()
    answers = session.scalars(
        select(Annotation.answers)
        .where(Annotation.project_id == project_id)
        .order_by(Annotation.id.desc())
        .limit(RECENT)
    ).all()
    found = ([d for d in durations if d is not None], list(answers))
    _RECENT[key] = (newest, *found)
    return found


def _straight_lines(
    session: Session,
    project_id: int,
    questions: list[str],
    new: Sequence[NewLabel],
    recent: Sequence[dict[str, Any]],
    reasons: dict[int, list[str]],
) -> None:
    by_user: dict[int, list[NewLabel]] = defaultdict(list)
    for label in new:
        by_user[label.user_id].append(label)
    for name in questions:
        counts = Counter(_key(a.get(name)) for a in recent if a.get(name) is not None)
        total = sum(counts.values()) or 1
        share = {key: n / total for key, n in counts.items()}
        for user_id, labels in by_user.items():
            history = _history(session, project_id, user_id, labels[-1].annotation_id, len(labels))
            for label in labels:
                earlier = [
                    answers.get(name) for aid, answers in history if aid <= label.annotation_id
                ]
                why = straight_line(name, earlier[-(RUN * 5) :], share)
                if why:
                    reasons[label.annotation_id].append(why)


def _history(
    session: Session, project_id: int, user_id: int, up_to: int, extra: int
) -> list[tuple[int, dict[str, Any]]]:
    """The annotator's labels in the project up to ``up_to``, oldest first (enough for runs)."""
    rows = session.execute(
        select(Annotation.id, Annotation.answers)
        .where(
            Annotation.project_id == project_id,
            Annotation.user_id == user_id,
            Annotation.id <= up_to,
        )
        .order_by(Annotation.id.desc())
        .limit(RUN * 5 + extra)
    ).all()
    return [(aid, answers) for aid, answers in reversed(rows)]


def _copies(
    session: Session,
    project_id: int,
    question: str,
    new: Sequence[NewLabel],
    reasons: dict[int, list[str]],
) -> None:
    for label in new:
        text = label.answers.get(question)
        if not isinstance(text, str) or len(normal_text(text)) < TEXT_MIN:
            continue
        keys = bands(text)
        candidates = session.scalars(
            select(TextFingerprint.annotation_id)
            .where(
                TextFingerprint.project_id == project_id,
                TextFingerprint.band.in_(keys),
                TextFingerprint.annotation_id != label.annotation_id,
            )
            .distinct()
            .limit(50)
        ).all()
        session.add_all(
            TextFingerprint(project_id=project_id, annotation_id=label.annotation_id, band=key)
            for key in keys
        )
        why = _closest(session, question, text, label, candidates)
        if why:
            reasons[label.annotation_id].append(why)
    session.flush()


def _closest(
    session: Session, question: str, text: str, label: NewLabel, candidates: Sequence[int]
) -> str | None:
    if not candidates:
        return None
    rows = session.execute(
        select(
            Annotation.id, Annotation.user_id, Annotation.task_id, cast(Annotation.answers, Text)
        ).where(Annotation.id.in_(list(candidates)))
    ).all()
    mine = shingles(text)
    best: tuple[float, int, int, int] | None = None
    for annotation_id, user_id, task_id, raw in rows:
        other = _text_of(raw, question)
        if other is None:
            continue
        similarity = jaccard(mine, shingles(other))
        if similarity >= NEAR and (best is None or similarity > best[0]):
            best = (similarity, annotation_id, user_id, task_id)
    if best is None:
        return None
    similarity, other_id, user_id, task_id = best
    who = "the same annotator" if user_id == label.user_id else "another annotator"
    where = "the same task" if task_id == label.task_id else f"task {task_id}"
    return (
        f"copy-paste: the answer to {question!r} is a near duplicate (similarity "
        f"{similarity:.2f}) of label {other_id} by {who} on {where}"
    )


def _text_of(raw: str, question: str) -> str | None:
    import orjson

    value = orjson.loads(raw).get(question)
    return value if isinstance(value, str) else None


def agreement_counts(
    user_ids: npt.NDArray[np.int64], task_ids: npt.NDArray[np.int64], answers: Sequence[str | None],
    consensus: Mapping[int, str],
) -> dict[int, tuple[int, int]]:  # fmt: skip
    """Per annotator: (labels equal to the consensus, labels compared), over tasks with at least
    three labels (consensus on fewer is mostly the annotator's own answer)."""
    crowd = Counter(task_ids.tolist())
    agreed: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for user_id, task_id, answer in zip(user_ids.tolist(), task_ids.tolist(), answers, strict=True):
        if answer is None or crowd[task_id] < CONSENSUS_MIN_CROWD or task_id not in consensus:
            continue
        agreed[user_id][1] += 1
        agreed[user_id][0] += answer == consensus[task_id]
    return {user_id: (k, n) for user_id, (k, n) in agreed.items()}
