"""One rendering of an audit form's items for every page that fills or shows one.

The shopper's visit form and the evaluator's monitoring form (and calibration) show the same
items the same way (templates/audits/_form_items.html); this builds its rows and reads its POST.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from audits.models import FormItem


def label(translations) -> str:
    if isinstance(translations, dict):
        return translations.get("en") or next(iter(translations.values()), "")
    return str(translations or "")


def form_sections(
    items: Iterable[FormItem],
    answers: Mapping[int, object],
    *,
    photos: Mapping[int, list] | None = None,
    errors: Mapping[str, str] | None = None,
    error_prefix: str = "",
) -> dict:
    """Rows grouped by section, with answers (by item id), photos, errors (by ``prefix + key``) and progress.

    ``items`` must come ordered by section, then position, with ``section`` selected.
    """
    photos = photos or {}
    errors = errors or {}
    sections, answered, total = [], 0, 0
    for item in items:
        total += 1
        answer = answers.get(item.pk)
        value = answer.value if answer else ""
        text = answer.text if answer else ""
        item_photos = photos.get(item.pk, [])
        if item.type == FormItem.Type.PHOTO:
            done = bool(item_photos)
        elif item.type == FormItem.Type.TEXT:
            done = bool((value or text).strip())
        else:
            done = bool(value.strip())
        answered += done
        row = {
            "item": item,
            "label": label(item.text),
            "value": value,
            "text": text,
            "comment": answer.comment if answer else "",
            "photos": item_photos,
            "done": done,
            "error": errors.get(f"{error_prefix}{item.key}", ""),
            "choices": [
                {"value": str(c.get("value")), "label": label(c.get("label")) or str(c.get("value"))}
                for c in item.choices or []
            ],
            "scale": list(range(item.scale_min, item.scale_max + 1))
            if item.type == FormItem.Type.SCALE
            else [],
        }
        if not sections or sections[-1]["section"].pk != item.section_id:
            sections.append({"section": item.section, "title": label(item.section.title), "rows": []})
        sections[-1]["rows"].append(row)
    return {"sections": sections, "answered": answered, "total": total}


def posted_answers(post, items: Iterable[FormItem]) -> dict[str, dict]:
    """``{item key: {value, text, comment}}`` for the fields the form posted (unposted items untouched)."""
    out = {}
    for item in items:
        answer = {}
        for name in ("value", "text", "comment"):
            field = f"{name}-{item.key}"
            if field in post:
                answer[name] = post.get(field, "")
        if answer:
            out[item.key] = answer
    return out
