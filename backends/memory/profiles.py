"""Flow profiles (TAMS 8.x) of the in-memory store."""

from __future__ import annotations

import copy

from backends import profiles, rules
from backends.base import Json, Page, PageRequest, ProfileQuery
from backends.errors import NotFound
from backends.memory.core import MemoryCore, _paged


class ProfilesMixin(MemoryCore):
    """``/flow-profiles``."""

    # --- flow profiles -----------------------------------------------------------------------
    def list_profiles(self, query: ProfileQuery, page: PageRequest) -> Page[Json]:
        with self._lock:
            chosen = [copy.deepcopy(self._profiles[i]) for i in sorted(self._profiles)]
            return _paged([p for p in chosen if profiles.matches_profile(p, query)], page, key="id")

    def get_profile(self, profile_id: str) -> Json:
        with self._lock:
            profile = self._profiles.get(profile_id)
            if profile is None:
                raise NotFound(f"profile {profile_id} not found")
            return copy.deepcopy(profile)

    def create_profile(self, profile_id: str, profile: Json) -> Json:
        stored = profiles.new_profile(profile_id, copy.deepcopy(profile), rules.now())
        with self._lock:
            if profile_id in self._profiles:
                raise profiles.already_exists(profile_id)
            self._profiles[profile_id] = stored
            return copy.deepcopy(stored)
