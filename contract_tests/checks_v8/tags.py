"""8.x tags: any-of ``tag.{name}`` filters and list-valued tags."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from contract_tests import strategies as S
from contract_tests.api import Api
from contract_tests.checks import create_flow
from contract_tests.checks_v8.common import (
    get_json,
    ids_of,
    tag_selects,
)
from contract_tests.errors import ContractFailure
from contract_tests.suite import Context, list_all

# --------------------------------------------------------------------------- 6. tags: any-of, list values

TAG = "conformance_pick"
TAG_VALUES = ["a", "b", "ab", "c"]
list_tag_values = st.lists(st.sampled_from(TAG_VALUES), min_size=1, max_size=3, unique=True)
tag_values = st.one_of(
    st.none(), st.sampled_from(TAG_VALUES), st.lists(st.sampled_from(TAG_VALUES), max_size=3, unique=True)
)


def tag_filters(ctx: Context) -> None:
    """8.0 tags (ADR-0040): tag values are strings or arrays of strings; ``tag.{name}=a,b`` selects
    flows and sources whose tag (or any element of a list-valued tag) equals ``a`` or ``b``, with no
    partial matches; 8.2: GET/PUT /flows|sources/{id}/tags/{name} round-trip array values."""
    api, check = ctx.api, "tags"
    # 8.0 and 8.1 declared the single-tag GET/PUT bodies as strings only.
    lists_in_single_tags = ctx.config.unsupported("8.2", "list-valued single-tag endpoints") is None

    @ctx.config.settings(examples=5)
    @given(
        # At least one flow with a list-valued tag, then any.
        values=st.tuples(list_tag_values, st.lists(tag_values, max_size=3)).map(lambda t: [t[0], *t[1]]),
        queries=st.lists(
            st.lists(st.sampled_from([*TAG_VALUES, "zz"]), min_size=1, max_size=3), min_size=1, max_size=3
        ),
    )
    def run(values: list[Any], queries: list[list[str]]) -> None:
        with ctx.case() as (scope, janitor):
            flows: dict[str, Any] = {}
            sources: dict[str, Any] = {}
            for value in values:
                extra = {"tags": {TAG: value}} if value is not None else {}
                flow = create_flow(api, scope, janitor, S.video_flow(**extra), check)
                flows[flow["id"]] = value
                for name, scope_value in scope.tags.items():
                    api.expect(api.put(f"/sources/{flow['source_id']}/tags/{name}", scope_value), [204], check)
                if isinstance(value, list) and not lists_in_single_tags:
                    value = None  # 8.0 and 8.1 declared the single-tag PUT body as a string
                if value is not None:
                    api.expect(api.put(f"/sources/{flow['source_id']}/tags/{TAG}", value), [204], check)
                sources[flow["source_id"]] = value
            for flow_id, value in flows.items():
                got = get_json(api, f"/flows/{flow_id}", check).get("tags") or {}
                if got.get(TAG) != value:
                    raise ContractFailure(
                        f"flow {flow_id} tag {TAG} is {got.get(TAG)!r}, sent {value!r}", "PUT /flows/{flowId}", check
                    )
            # Always one query whose first value matches nothing: any-of, not just the first value.
            for query in [*queries, ["zz", *TAG_VALUES[::-1]]]:
                raw = ",".join(query)
                for path, made in (("/flows", flows), ("/sources", sources)):
                    want = {i for i, v in made.items() if v is not None and tag_selects({TAG: v}, f"tag.{TAG}", raw)}
                    got_ids = ids_of(list_all(api, path, [*scope.filters, (f"tag.{TAG}", raw)], check).items)
                    if set(got_ids) != want or len(got_ids) != len(set(got_ids)):
                        tagged = {i: made[i] for i in made}
                        raise ContractFailure(
                            f"tag.{TAG}={raw} listed {sorted(got_ids)}, expected {sorted(want)} (tags: {tagged})",
                            f"GET {path}",
                            check,
                        )
            if not lists_in_single_tags:
                return
            first = next(iter(flows))
            source = next(iter(sources))
            for value in (["x", "y,z", "a"], "plain", []):
                _tag_round_trip(api, f"/flows/{first}", value, check, "PUT /flows/{flowId}/tags/{name}")
                _tag_round_trip(api, f"/sources/{source}", value, check, "PUT /sources/{sourceId}/tags/{name}")

    run()


def _tag_round_trip(api: Api, base: str, value: Any, check: str, operation: str) -> None:
    """PUT a tag value (string or array) and read it back through the tag, the tags and the resource."""
    name = f"{TAG}_rt"
    api.expect(api.put(f"{base}/tags/{name}", value), [204], check)
    single = get_json(api, f"{base}/tags/{name}", check)
    every = get_json(api, f"{base}/tags", check)
    whole = get_json(api, base, check).get("tags") or {}
    for where, got in (("the tag", single), ("the tags", every.get(name)), ("the resource", whole.get(name))):
        if got != value:
            raise ContractFailure(f"{where} reads {got!r} after PUT {value!r} at {base}/tags/{name}", operation, check)
