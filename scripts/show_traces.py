"""Print the traces that tests/otlp_receiver.py wrote, as trees, oldest first.

    python tests/otlp_receiver.py 4317 spans.jsonl &      # a minimal OTLP/gRPC backend
    python scripts/show_traces.py spans.jsonl [--workflow ID]

Each line: service, span name, the pynenc.* attributes, and "-> linked to <span id>" for a
replay's link to the span that first recorded its value (marked * where that span is shown).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

KINDS = {1: "internal", 2: "server", 3: "client"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spans_file")
    parser.add_argument("--workflow", help="only traces touching this workflow id")
    parser.add_argument("--no-db", action="store_true", help="hide Redis spans")
    options = parser.parse_args()
    with open(options.spans_file, encoding="utf-8") as text:
        # Whole lines only: the receiver may be writing the last one.
        spans = [json.loads(line) for line in text.read().split("\n")[:-1] if line.strip()]
    by_trace: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    shown = {span["span_id"] for span in spans}
    for trace_id, members in sorted(by_trace.items(), key=lambda item: min(s["start_ns"] for s in item[1])):
        if options.workflow and not any(s["attributes"].get("pynenc.workflow.id") == options.workflow for s in members):
            continue
        ids = {s["span_id"] for s in members}
        children: dict[str, list[dict]] = defaultdict(list)
        for span in members:
            children[span["parent_span_id"] if span["parent_span_id"] in ids else ""].append(span)
        print(f"trace {trace_id}")

        def show(span: dict, depth: int) -> None:
            if options.no_db and "db.system" in span["attributes"]:
                return
            attributes = " ".join(f"{k.removeprefix('pynenc.')}={v}" for k, v in sorted(span["attributes"].items())
                                  if k.startswith("pynenc.") and k not in {"pynenc.app_id", "pynenc.runner.id"})
            links = "".join(f" -> linked to {link['span_id']}{'*' if link['span_id'] in shown else ''}"
                            for link in span["links"])
            print(f"{'  ' * depth}{span['service']}: {span['name']} ({KINDS.get(span['kind'], span['kind'])}, "
                  f"{(span['end_ns'] - span['start_ns']) / 1e6:.2f} ms) [{span['span_id']}] {attributes}{links}")
            for child in sorted(children[span["span_id"]], key=lambda s: s["start_ns"]):  # noqa: B023 - show() runs within this iteration
                show(child, depth + 1)

        for root in sorted(children[""], key=lambda s: s["start_ns"]):
            show(root, 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
