"""Forcing a ranking engine whatever this machine would pick (screening pays only on AMX CPUs and
large dimensions): the screened one for any float32 data and however many candidates, or float32."""

import math

from simtune.functional import ranking, screening


def force_engine(monkeypatch, screened: bool) -> None:
    monkeypatch.setattr(ranking, "screening_pays", lambda gallery, k: screened and screening.screening_is_safe(gallery))
    monkeypatch.setattr(ranking, "MAX_CANDIDATES_PER_RESULT", math.inf)
