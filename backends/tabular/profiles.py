"""Flow profiles of the tabular store (TAMS 8.x): written once, never changed (``backends.profiles``)."""

from __future__ import annotations

import json

from backends import profiles, rules
from backends.base import Json, Page, PageRequest, ProfileQuery
from backends.errors import NotFound
from backends.tabular.core import TabularCore, _Effects
from backends.tabular.engine import ALL, Transaction, col
from backends.tabular.tables import PROFILES


def _profile_row(profile: Json) -> Json:
    metadata = profile["flow_metadata"]
    return {
        "id": profile["id"],
        "format": metadata.get("format"),
        "codec": metadata.get("codec"),
        "label": profile.get("label"),
        "doc": json.dumps(profile),
    }


class ProfilesMixin(TabularCore):
    """``/service/profiles``; flows expand them when written (``flows``)."""

    def _profile_or_none(self, tx: Transaction, profile_id: str) -> Json | None:
        rows = self._rows(tx, PROFILES, col("id") == profile_id, columns=["doc"])
        return json.loads(rows[0]["doc"]) if rows else None

    def list_profiles(self, query: ProfileQuery, page: PageRequest) -> Page[Json]:
        where = ALL
        for name in ("format", "codec", "label"):
            value = getattr(query, name)
            if value is not None:
                where &= col(name) == value

        def body(tx: Transaction) -> Page[Json]:
            def select(rows: list[Json]) -> list[Json]:
                found = [json.loads(r["doc"]) for r in rows]
                return [p for p in found if profiles.matches_profile(p, query)]

            return self._scan_page(tx, PROFILES, where, page, select)

        return self._read(body)

    def get_profile(self, profile_id: str) -> Json:
        profile = self._read(lambda tx: self._profile_or_none(tx, profile_id))
        if profile is None:
            raise NotFound(f"profile {profile_id} not found")
        return profile

    def create_profile(self, profile_id: str, profile: Json) -> Json:
        stored = profiles.new_profile(profile_id, profile, rules.now())

        def body(tx: Transaction, fx: _Effects) -> Json:
            if self._profile_or_none(tx, profile_id) is not None:
                raise profiles.already_exists(profile_id)
            tx.insert(PROFILES.name, PROFILES.rows([_profile_row(stored)]))
            return stored

        with self._locks.session() as held:
            held.catalog()
            return self._write(body)
