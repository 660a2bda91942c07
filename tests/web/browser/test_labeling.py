"""Labeling in Chromium with the keyboard only: one task of each kind, answers checked through
the API; spans in Arabic and emoji text store exact code-point offsets."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, Route
from tests.web.browser.conftest import PHONE, Server, SignIn, shoot

from quorum.domain.demo import demo_specs

pytestmark = pytest.mark.browser
ANNOTATOR = "annotator1@example.com"
SPECS = {spec["schema"]["questions"][0]["kind"]: spec for spec in demo_specs()}
SPANS = SPECS["spans"]
EMOJI = next(t["data"]["text"] for t in SPANS["tasks"] if "💊" in t["data"]["text"])
ARABIC = next(t["data"]["text"] for t in SPANS["tasks"] if "مريض" in t["data"]["text"])
SUBMIT_URL = "**/assignments/*/submit"


def _stored(server: Server, project_id: int, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        items = server.annotations(project_id)
        if len(items) >= count:
            return items
        time.sleep(0.1)
    raise AssertionError(f"no annotation stored in project {project_id}")


def _open(
    sign_in: SignIn,
    project_id: int,
    on_submit: Callable[[Route], None] | None = None,
    **kwargs: Any,
) -> Page:
    page = sign_in(ANNOTATOR, **kwargs)
    if on_submit:
        # Routed before the page loads: Chromium applies interception to a live page's loaders
        # asynchronously, so under load a submit right after page.route() could bypass it.
        page.route(SUBMIT_URL, on_submit)
    page.goto(f"/projects/{project_id}/label")
    page.wait_for_selector("#answer-form")
    return page


def _submit(page: Page) -> None:
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#no-task, #answer-form[data-assignment]:not(.saving)")


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


CASES: dict[str, tuple[list[dict[str, Any]], Callable[[Page], None], Any]] = {
    "choice": ([{"data": SPECS["choice"]["tasks"][0]["data"]}], lambda p: press(p, "2"), "urgent"),
    "multi_choice": (
        [{"data": SPECS["multi_choice"]["tasks"][0]["data"]}],
        lambda p: press(p, "1", "3", "4", "4"),
        ["indemnification", "termination"],
    ),
    "rating": ([{"data": SPECS["rating"]["tasks"][0]["data"]}], lambda p: press(p, "4"), 4),
    "preference": (
        [{"data": SPECS["preference"]["tasks"][0]["data"]}],
        lambda p: press(p, "b"),
        "response_b",
    ),
    "ranking": (
        [{"data": {"question": "Order these", "candidates": ["alpha", "beta", "gamma"]}}],
        # the first item to place 3, then up one and move the new second item to the top
        lambda p: press(p, "3", "ArrowUp", "Shift+ArrowUp"),
        [2, 1, 0],
    ),
    "text": (
        [{"data": SPECS["text"]["tasks"][0]["data"]}],
        lambda p: p.keyboard.type(
            "Start with lifestyle measures, then reassess the risk in a year."
        ),
        "Start with lifestyle measures, then reassess the risk in a year.",
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_label_each_kind_with_the_keyboard(server: Server, sign_in: SignIn, kind: str) -> None:
    tasks, keys, expected = CASES[kind]
    project_id = server.project(SPECS[kind]["schema"], tasks)
    page = _open(sign_in, project_id)
    keys(page)
    shoot(page, f"label-{kind}")
    _submit(page)
    [stored] = _stored(server, project_id)
    name = SPECS[kind]["schema"]["questions"][0]["name"]
    assert stored["answers"] == {name: expected}
    assert stored["duration_ms"] > 0
    page.wait_for_selector("#no-task")


def test_spans_in_emoji_text_store_code_point_offsets(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(SPANS["schema"], [{"data": {"text": EMOJI}}])
    page = _open(sign_in, project_id)
    press(page, *["Control+ArrowRight"] * 5, "Control+Shift+ArrowRight", "1")  # ibuprofen
    press(page, "Control+ArrowRight", "Control+Shift+ArrowRight", "Control+Shift+ArrowRight", "2")
    press(page, "End", "Shift+ArrowLeft", "3")  # the last emoji alone: one code point
    assert page.locator(".span-list li").count() == 3
    shoot(page, "label-spans-emoji")
    _submit(page)
    [stored] = _stored(server, project_id)
    start = EMOJI.index("ibuprofen")
    assert stored["answers"]["entities"] == [
        {"start": start, "end": start + len("ibuprofen"), "label": "medication"},
        {"start": EMOJI.index("400 mg"), "end": EMOJI.index("400 mg") + 6, "label": "dosage"},
        {"start": len(EMOJI) - 1, "end": len(EMOJI), "label": "condition"},
    ]
    assert EMOJI[len(EMOJI) - 1 :] == "🙏"


def test_spans_in_arabic_text_follow_the_reading_direction(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(SPANS["schema"], [{"data": {"text": ARABIC}}])
    page = _open(sign_in, project_id)
    assert page.eval_on_selector(".span-text", "box => getComputedStyle(box).direction") == "rtl"
    # In right-to-left text the left arrow moves forward: to the sixth word, diabetes.
    press(page, *["Control+ArrowLeft"] * 5, "Control+Shift+ArrowLeft", "3")
    press(page, "End", *["Shift+ArrowRight"] * 7, "3")  # the last word and its full stop
    shoot(page, "label-spans-arabic")
    _submit(page)
    [stored] = _stored(server, project_id)
    diabetes = ARABIC.index("السكري")
    assert stored["answers"]["entities"] == [
        {"start": diabetes, "end": diabetes + len("السكري"), "label": "condition"},
        {"start": len(ARABIC) - 7, "end": len(ARABIC), "label": "condition"},
    ]
    assert ARABIC[len(ARABIC) - 7 :] == "الوقوف."


def test_spans_selected_with_the_mouse(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(SPANS["schema"], [{"data": {"text": EMOJI}}])
    page = _open(sign_in, project_id)
    # Select "migraine 🤕" as a mouse drag leaves it: a DOM range in UTF-16 offsets.
    page.evaluate(
        """() => {
          const box = document.querySelector('.span-text');
          const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
          let node;
          while ((node = walker.nextNode()) && !node.data.includes('migraine')) {}
          const from = node.data.indexOf('migraine');
          const to = node.data.indexOf('🤕') + '🤕'.length;
          getSelection().setBaseAndExtent(node, from, node, to);
          box.dispatchEvent(new MouseEvent('mouseup', {bubbles: true}));
        }"""
    )
    page.click("button.span-label[data-label='condition']")
    page.locator(".span-list li").wait_for()
    _submit(page)
    [stored] = _stored(server, project_id)
    start = EMOJI.index("migraine")
    assert stored["answers"]["entities"] == [
        {"start": start, "end": EMOJI.index("🤕") + 1, "label": "condition"}
    ]


def test_the_next_task_comes_without_a_reload(server: Server, sign_in: SignIn) -> None:
    tasks = [{"data": t["data"]} for t in SPECS["choice"]["tasks"][:3]]
    project_id = server.project(SPECS["choice"]["schema"], tasks)
    page = _open(sign_in, project_id)
    page.evaluate("window.stillHere = true")
    seen = []
    for key in ("1", "3", "4"):
        seen.append(page.get_attribute("#answer-form", "data-assignment"))
        press(page, key)
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "last => !document.querySelector('#answer-form') || "
            "document.querySelector('#answer-form').dataset.assignment !== last",
            arg=seen[-1],
        )
    page.wait_for_selector("#no-task")
    assert page.evaluate("window.stillHere") is True
    assert len(set(seen)) == 3
    assert page.inner_text("#done-count") == "3 labelled"
    stored = sorted(a["answers"]["urgency"] for a in _stored(server, project_id, 3))
    assert stored == ["emergency", "not clinical", "routine"]


def test_skip_instructions_and_keys_panel(server: Server, sign_in: SignIn) -> None:
    tasks = [{"data": t["data"]} for t in SPECS["choice"]["tasks"][:2]]
    project_id = server.project(SPECS["choice"]["schema"], tasks)
    page = _open(sign_in, project_id)
    first = page.get_attribute("#answer-form", "data-assignment")
    press(page, "i")
    assert page.is_visible("#instructions") and "Label carefully." in page.inner_text(
        "#instructions"
    )
    shoot(page, "label-instructions")
    press(page, "Escape")
    assert not page.is_visible("#instructions")
    press(page, "Shift+S")
    page.wait_for_function(
        "first => document.querySelector('#answer-form')?.dataset.assignment !== first", arg=first
    )
    assert server.annotations(project_id) == []


def test_a_failed_submission_is_retried_with_the_same_key(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(
        SPECS["choice"]["schema"], [{"data": SPECS["choice"]["tasks"][0]["data"]}]
    )
    keys: list[str | None] = []

    def flaky(route: Route) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.abort("connectionreset")  # the request never reaches the server
        elif len(keys) == 2:
            route.fetch()  # the server stores the label...
            route.abort("connectionreset")  # ...but its reply is lost on the way back
        else:
            route.continue_()  # the retry is answered from the first reply

    page = _open(sign_in, project_id, on_submit=flaky)
    press(page, "2")
    _submit(page)
    page.wait_for_selector("#no-task")
    [stored] = _stored(server, project_id)
    assert stored["answers"] == {"urgency": "urgent"}
    assert len(keys) == 3 and keys[0] is not None and len(set(keys)) == 1


def test_a_lost_server_keeps_the_answer_on_screen(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(
        SPECS["text"]["schema"], [{"data": SPECS["text"]["tasks"][0]["data"]}]
    )
    page = _open(
        sign_in,
        project_id,
        on_submit=lambda route: route.fulfill(status=502, body="bad gateway"),
    )
    answer = "A careful answer that is comfortably longer than forty characters."
    page.keyboard.type(answer)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#banner.banner-error", timeout=20_000)
    assert "Not saved" in page.inner_text("#banner")
    assert page.input_value("textarea") == answer
    shoot(page, "label-not-saved")
    page.unroute(SUBMIT_URL)
    page.reload()  # even a reload keeps the draft, and its key
    page.wait_for_selector("#answer-form")
    assert page.input_value("textarea") == answer
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#no-task")
    assert _stored(server, project_id)[0]["answers"] == {"reference_answer": answer}


def test_a_pause_mid_task_is_explained_and_the_answer_kept(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(
        SPECS["choice"]["schema"], [{"data": SPECS["choice"]["tasks"][0]["data"]}]
    )
    page = _open(sign_in, project_id)
    press(page, "2")
    members = server.api("GET", f"/projects/{project_id}/members")
    [annotator] = [m["user_id"] for m in members["items"] if m["email"] == ANNOTATOR]
    server.api(
        "POST",
        f"/projects/{project_id}/annotators/{annotator}/pause",
        json={"reason": "spot check"},
    )
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#banner.banner-error")
    assert "you are paused in this project" in page.inner_text("#banner")
    assert page.is_checked("input[value=urgent]")  # the answer stays on screen
    assert not page.is_visible("#lease-timer")  # the lease is gone: no countdown
    shoot(page, "label-paused-mid-task")
    press(page, "n")
    page.wait_for_selector("#no-task")
    assert "You are paused in this project" in page.inner_text("#no-task")
    assert server.annotations(project_id) == []


def test_an_expired_lease_is_announced_and_the_answer_kept(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(
        SPECS["choice"]["schema"], [{"data": SPECS["choice"]["tasks"][0]["data"]}], lease_seconds=10
    )
    page = sign_in(ANNOTATOR)
    page.clock.install()
    page.goto(f"/projects/{project_id}/label")
    page.wait_for_selector("#answer-form")
    press(page, "3")
    page.clock.run_for(11_000)
    page.wait_for_selector("#banner.banner-warn")
    assert "ran out" in page.inner_text("#banner")
    assert page.inner_text("#lease-timer") == "lease expired"
    shoot(page, "label-lease-expired")
    page.keyboard.press("Control+Enter")  # the slot is still free, so it is saved
    page.wait_for_selector("#no-task")
    assert _stored(server, project_id)[0]["answers"] == {"urgency": "routine"}


def test_the_labeling_page_on_a_phone(server: Server, sign_in: SignIn) -> None:
    data = SPECS["preference"]["tasks"][0]["data"]
    project_id = server.project(SPECS["preference"]["schema"], [{"data": data}])
    page = _open(sign_in, project_id, viewport=PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width}px"
    shoot(page, "label-phone-preference")
    press(page, "t")
    _submit(page)
    assert _stored(server, project_id)[0]["answers"] == {"better": "tie"}


def test_ranking_by_drag_and_drop(server: Server, sign_in: SignIn) -> None:
    data = {"question": "Order these", "candidates": ["alpha", "beta", "gamma"]}
    project_id = server.project(SPECS["ranking"]["schema"], [{"data": data}])
    page = _open(sign_in, project_id)
    page.drag_and_drop(".rank-item[data-index='2']", ".rank-item[data-index='0']")
    assert page.eval_on_selector_all(".rank-item", "items => items.map(i => i.dataset.index)") == [
        "2",
        "0",
        "1",
    ]
    _submit(page)
    assert _stored(server, project_id)[0]["answers"] == {"quality_order": [2, 0, 1]}


def test_span_rules_overlap_and_removal(server: Server, sign_in: SignIn) -> None:
    project_id = server.project(SPANS["schema"], [{"data": {"text": EMOJI}}])
    page = _open(sign_in, project_id)
    press(page, *["Control+ArrowRight"] * 5, "Control+Shift+ArrowRight", "1")  # ibuprofen
    press(page, "Shift+ArrowLeft", "Shift+ArrowLeft", "Shift+ArrowLeft", "1")  # "fen", same label
    assert "may not overlap" in page.inner_text(".span-status")
    press(page, "2")  # another label may overlap
    assert page.locator(".span-list li").count() == 2
    page.locator(".span-list button").first.press("Enter")  # remove "ibuprofen" by keyboard
    assert page.locator(".span-list li").count() == 1
    _submit(page)
    end = EMOJI.index("ibuprofen") + len("ibuprofen")
    assert _stored(server, project_id)[0]["answers"] == {
        "entities": [{"start": end - 3, "end": end, "label": "dosage"}]
    }


def test_several_questions_advance_as_you_answer(server: Server, sign_in: SignIn) -> None:
    schema = {
        "questions": [
            {"name": "topic", "kind": "choice", "options": ["cardiology", "oncology"]},
            {"name": "clarity", "kind": "rating", "min": 1, "max": 5},
            {"name": "note", "kind": "text", "required": False},
        ]
    }
    project_id = server.project(schema, [{"data": {"text": "Chest pain on exertion."}}])
    page = _open(sign_in, project_id)
    press(page, "2", "5")  # the choice, then the rating it moved on to
    assert page.eval_on_selector("#q-note", "q => q.classList.contains('active')")  # on to the text
    _submit(page)
    assert _stored(server, project_id)[0]["answers"] == {"topic": "oncology", "clarity": 5}
