"""People: households in residential buildings, persons with ID numbers, grid workers.

Everything is vectorised over numpy arrays: a Chongqing-sized city has about a million
persons, far too many for a Python loop per person.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sample_data._divisions import IntArray
from sample_data._names import GIVEN_FEMALE, GIVEN_MALE, MOBILE_PREFIXES, SURNAMES

REFERENCE_DATE = date(2025, 7, 1)
"""Ages and care tags are computed as of this day (fixed, so output never drifts)."""
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))
_HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5, 6])
_HOUSEHOLD_SIZE_P = np.array([0.25, 0.30, 0.25, 0.12, 0.05, 0.03])
_DAYS_PER_YEAR = 365.2425
BoolArray = NDArray[np.bool_]


def id_check_char(body17: NDArray[np.int64]) -> NDArray[np.str_]:
    """GB 11643 check character (ISO 7064 MOD 11-2) of 17-digit ID number bodies."""
    digits = (body17[:, None] // 10 ** np.arange(16, -1, -1, dtype=np.int64)) % 10
    return _ID_CHECK[(digits * _ID_WEIGHTS).sum(axis=1) % 11]


def make_households(rng: np.random.Generator, buildings: pd.DataFrame) -> pd.DataFrame:
    """Households of the residential buildings: code, building_code, room (e.g. ``1203``)."""
    residential = np.flatnonzero(buildings.use.to_numpy() == "residential")
    per_building = 1 + rng.poisson(1.56, len(residential))
    building = np.repeat(residential, per_building)
    index = _rank_within(building)
    per_floor = -(-per_building // buildings.floors.to_numpy()[residential])  # ceil
    per_floor = np.repeat(per_floor, per_building)
    room = (index // per_floor + 1) * 100 + index % per_floor + 1
    building_code = buildings.code.to_numpy()[building]
    room_text = room.astype(str)
    return pd.DataFrame(
        {
            "code": building_code + np.char.zfill(room_text, 4).astype(object),
            "building_code": building_code,
            "room": room_text.astype(object),
        }
    )


def _rank_within(groups: IntArray) -> IntArray:
    """0-based position of each element within its run of equal (sorted) group values."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, lengths)


def make_persons(
    rng: np.random.Generator, households: pd.DataFrame, district_of_household: NDArray[np.str_]
) -> pd.DataFrame:
    """Residents of every household, with name, ID number, phone, birth date, care tags."""
    size = rng.choice(_HOUSEHOLD_SIZES, len(households), p=_HOUSEHOLD_SIZE_P)
    household = np.repeat(np.arange(len(households)), size)
    member = _rank_within(household)
    age = _ages(rng, size, household, member)
    male = _genders(rng, household, member)
    birth = _birth_dates(rng, age)
    exact_age = _age_on(birth, REFERENCE_DATE)
    prefix = district_of_household[household].astype(np.int64)
    return pd.DataFrame(
        {
            "household_code": households.code.to_numpy()[household],
            "name": _person_names(rng, male),
            "id_number": _id_numbers(prefix, birth, male),
            "phone": _phones(rng, exact_age),
            "birth_date": birth.astype("datetime64[ns]"),
            "gender": np.where(male, "M", "F").astype(object),
            "care_tags": _care_tags(rng, exact_age, size[household], household),
        }
    )


def _ages(
    rng: np.random.Generator, size: IntArray, household: IntArray, member: IntArray
) -> NDArray[np.float64]:
    """Plausible ages: singles (many elderly), couples, children, parents, grandchildren."""
    n_h, n = len(size), len(household)
    grandparents = (size >= 2) & (rng.random(n_h) < 0.06)  # with left-behind grandchildren
    head = np.where(
        size == 1,
        np.where(rng.random(n_h) < 0.35, rng.uniform(60, 93, n_h), rng.uniform(20, 60, n_h)),
        np.where(grandparents, rng.uniform(58, 78, n_h), rng.triangular(24, 42, 82, n_h)),
    )[household]
    spouse = np.clip(head + rng.normal(0.0, 3.0, n), 20.0, 100.0)
    youngest = np.where(head < 44, 0.0, head - 36.0)  # parents were 22–36 at birth
    oldest = np.maximum(head - 22.0, youngest + 1.0)
    child = youngest + rng.random(n) * (oldest - youngest)
    elder = np.minimum(head + rng.uniform(22.0, 30.0, n), 100.0)
    other = np.where(
        grandparents[household],
        rng.uniform(2.0, 16.0, n),
        np.where((head >= 36) & (head < 60) & (rng.random(n) < 0.35), elder, child),
    )
    return np.select([member == 0, member == 1], [head, spouse], other)


def _genders(rng: np.random.Generator, household: IntArray, member: IntArray) -> BoolArray:
    """Male flags: a random head, a spouse of the other sex, others at random."""
    head_male = (rng.random(household.max() + 1) < 0.5)[household]
    others = rng.random(len(household)) < 0.51
    return np.select([member == 0, member == 1], [head_male, ~head_male], others)


def _birth_dates(rng: np.random.Generator, age: NDArray[np.float64]) -> NDArray[np.datetime64]:
    days = np.floor(age * _DAYS_PER_YEAR + rng.uniform(0.0, 1.0, len(age))).astype(np.int64)
    return np.datetime64(REFERENCE_DATE, "D") - days.astype("timedelta64[D]")


def _age_on(birth: NDArray[np.datetime64], day: date) -> IntArray:
    """Completed years on ``day`` (a birthday counts on the day itself)."""
    stamp = pd.DatetimeIndex(birth)
    years = day.year - stamp.year.to_numpy()
    before = (stamp.month.to_numpy() * 100 + stamp.day.to_numpy()) > day.month * 100 + day.day
    return (years - before).astype(np.int64)


def _person_names(rng: np.random.Generator, male: BoolArray) -> NDArray[np.object_]:
    n = len(male)
    surnames = np.array(list(SURNAMES))
    weights = 1.0 / (np.arange(len(surnames)) + 6.0)
    surname = surnames[rng.choice(len(surnames), n, p=weights / weights.sum())]
    pools = np.array(list(GIVEN_MALE)), np.array(list(GIVEN_FEMALE))

    def given_char() -> NDArray[np.str_]:
        return np.where(
            male,
            pools[0][rng.integers(0, len(pools[0]), n)],
            pools[1][rng.integers(0, len(pools[1]), n)],
        )

    first, second = given_char(), given_char()
    second = np.where(rng.random(n) < 0.3, "", second)
    return np.char.add(np.char.add(surname, first), second).astype(object)


def _id_numbers(
    prefix: IntArray, birth: NDArray[np.datetime64], male: BoolArray
) -> NDArray[np.object_]:
    """18-digit resident ID numbers: area, birth date, sequence (odd = male), check.

    The 3-digit sequence is made unique among people of one area, birthday and sex.
    """
    stamp = pd.DatetimeIndex(birth)
    yyyymmdd = (stamp.year * 10000 + stamp.month * 100 + stamp.day).to_numpy(np.int64)
    rank = (
        pd.DataFrame({"p": prefix, "d": yyyymmdd, "m": male})
        .groupby(["p", "d", "m"], sort=False)
        .cumcount()
        .to_numpy()
    )
    offset = (prefix * 31 + yyyymmdd * 17) % 500  # varied starting point, same in a group
    seq = ((offset + rank) % 500) * 2 + male
    body = prefix * 10**11 + yyyymmdd * 10**3 + seq
    return np.char.add(body.astype(str), id_check_char(body)).astype(object)


def _phones(rng: np.random.Generator, age: IntArray) -> NDArray[np.object_]:
    """11-digit mobile numbers; children under 12 have none."""
    n = len(age)
    prefix = np.asarray(MOBILE_PREFIXES, dtype=np.int64)[rng.integers(0, len(MOBILE_PREFIXES), n)]
    phone = (prefix * 10**8 + rng.integers(0, 10**8, n)).astype(str).astype(object)
    phone[age < 12] = None
    return phone


def _care_tags(
    rng: np.random.Generator, age: IntArray, household_size: IntArray, household: IntArray
) -> list[list[str]]:
    """Care tags: elderly living alone (60+, alone), elderly (80+), disabled, special care,
    low income (whole household), left-behind child (under 16, no adult of 18–59 at home).
    """
    n = len(age)
    working_adults = np.bincount(household, weights=(age >= 18) & (age < 60))[household]
    low_income_household = rng.random(household.max() + 1) < 0.02
    flags = {
        "elderly_living_alone": (household_size == 1) & (age >= 60),
        "elderly": age >= 80,
        "disabled": rng.random(n) < 0.015,
        "special_care": rng.random(n) < 0.003,
        "low_income": low_income_household[household],
        "left_behind_child": (age < 16) & (working_adults == 0),
    }
    mask = np.zeros(n, dtype=np.int64)
    for bit, tag_flags in enumerate(flags.values()):
        mask |= tag_flags.astype(np.int64) << bit
    names = list(flags)
    table = {m: [t for b, t in enumerate(names) if m >> b & 1] for m in np.unique(mask).tolist()}
    tags: list[list[str]] = [[] for _ in range(n)]  # most people have none
    for i in np.flatnonzero(mask).tolist():
        tags[i] = list(table[int(mask[i])])
    return tags


def make_workers(rng: np.random.Generator, grids: pd.DataFrame) -> pd.DataFrame:
    """Workers: a full-time worker on every grid, part-timers on some, a leader per community.

    The community's grid leader is assigned to its first grid (sequence 001).
    """
    codes = grids.code.to_numpy()
    leader_grids = codes[np.char.endswith(codes.astype(str), "001")]
    part_time = codes[rng.random(len(codes)) < 0.3]
    frame = pd.DataFrame(
        {
            "code": np.concatenate(
                ["W" + leader_grids + "00", "W" + codes + "01", "W" + part_time + "02"]
            ),
            "role": ["grid_leader"] * len(leader_grids)
            + ["full_time"] * len(codes)
            + ["part_time"] * len(part_time),
            "grid_code": np.concatenate([leader_grids, codes, part_time]),
        }
    ).sort_values("code", ignore_index=True)
    n = len(frame)
    male = rng.random(n) < 0.45
    frame.insert(1, "name", _person_names(rng, male))
    frame.insert(2, "phone", _phones(rng, np.full(n, 30)))
    frame.insert(4, "on_duty", rng.random(n) < 0.9)
    return frame
