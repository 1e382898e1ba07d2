"""Assertions the integration tests share, over the comparisons of :mod:`bench.verify`."""

from __future__ import annotations

from bench.stack import Pipeline
from bench.verify import Comparison, compare_all, erp_customers
from state.dlq import DeadLetterStore
from state.keys import Keys
from state.trace import TraceStore, describe, story


def assert_targets_match_source(p: Pipeline) -> None:
    """Every ERP customer is in every target, exactly (the comparisons' report otherwise,
    with the story of each record found wrong and the targets' counters, so that a failure
    seen once in CI says why)."""
    comparisons = compare_all(p)
    assert all(c.equal for c in comparisons), explain(p, comparisons)


def explain(p: Pipeline, comparisons: list[Comparison], most: int = 5) -> str:
    """The comparisons, then each wrong record's trace and the counters of its target."""
    lines = [str(c) for c in comparisons] + dead_letters(p)
    traces = TraceStore.of(p.redis, p.settings)
    for comparison in comparisons:
        if comparison.equal:
            continue
        lines.append(f"--- {comparison.target} counters: {p.counters(comparison.target)}")
        wrong = comparison.missing + comparison.duplicates + comparison.wrong_fields
        wrong += comparison.wrong_name + comparison.wrong_parent + comparison.wrong_active
        for key in dict.fromkeys(k.split(".")[0] for k in wrong[:most]):
            lines.append(f"--- {key}:")
            for flow, events in traces.read(["customers"], key).items():
                for event in story(events):
                    if event.get("target") in (None, comparison.target):
                        lines.append(f"  {flow} {event.get('at')} {describe(event)}")
    return "\n".join(lines)


def dead_letters(p: Pipeline) -> list[str]:
    """One line per dead letter: target, key, code, attempts, message."""
    store = DeadLetterStore(p.redis, Keys(p.settings.key_prefix))
    return [
        f"--- dead letter {e.target} {e.key}: {e.code} after {e.attempts} attempts: {e.message}"
        for e in store.iter_entries()
    ]


def unusual_outcomes(p: Pipeline, target: str, flow: str = "customers") -> str:
    """The target's counters, then the story of each record there that was not simply
    applied: skipped, dead-lettered or retried (for a count that came out wrong)."""
    lines = [f"--- {target} counters: {p.counters(target)}", *dead_letters(p)]
    traces = TraceStore.of(p.redis, p.settings)
    for key in sorted(erp_customers(p)):
        events = [
            e for e in traces.read([flow], key).get(flow, []) if e.get("target") in (None, target)
        ]
        if any(e.get("what") in ("skipped", "dead_lettered", "attempt_failed") for e in events):
            lines.append(f"--- {key}:")
            lines.extend(f"  {e.get('at')} {describe(e)}" for e in story(events))
    return "\n".join(lines)
