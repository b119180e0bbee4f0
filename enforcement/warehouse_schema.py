"""Warehouse tables (docs/ARCHITECTURE.md → "Tables the pipeline reads and writes").

One definition serves SQLite and PostgreSQL. Registry tables keep the bureau's CSV text as sent;
the rules convert types where they use them.
"""

from __future__ import annotations

import sqlalchemy as sa

METADATA = sa.MetaData()

REGISTRY_COLUMNS: dict[str, list[str]] = {
    "subdistricts": ["subdistrict_id", "name"],
    "enterprises": ["enterprise_id", "name", "subdistrict_id", "industry"],
    "stacks": ["stack_id", "enterprise_id", "name", "height_m", "fuel", "o2_ref_pct", "device_id"],
    "stack_limits": [
        "stack_id",
        "pollutant",
        "limit_mg_m3",
        "o2_ref_pct",
        "valid_from",
        "valid_to",
        "standard",
        "category",
        "source",
    ],
    "stations": ["station_id", "device_id", "subdistrict_id", "name", "lat", "lon", "install_date"],
    "gas_stations": [
        "gas_station_id",
        "name",
        "subdistrict_id",
        "annual_gasoline_sales_t",
        "has_online_monitor",
        "device_id",
        "nozzles",
    ],
    "rsd_units": ["unit_id", "device_id", "site", "subdistrict_id", "calibrated_until"],
    "vehicles": [
        "plate",
        "owner",
        "transport_enterprise",
        "key_enterprise",
        "fuel_type",
        "gross_weight_t",
        "emission_standard",
    ],
    "devices": [
        "device_id",
        "family",
        "stream",
        "owner_id",
        "crc_mode",
        "units",
        "install_date",
        "pw",
    ],
}
REGISTRY_TABLES = tuple(REGISTRY_COLUMNS)

for _name, _columns in REGISTRY_COLUMNS.items():
    sa.Table(_name, METADATA, *(sa.Column(c, sa.Text, nullable=True) for c in _columns))

TIME_COLUMNS = {"data_time", "received_at", "hour_start", "built_at", "started_at"}
JSON_COLUMNS = {"reading_ids", "raw_sha256s", "unexpected_ids"}


def _day() -> sa.Column:
    return sa.Column("day", sa.Text, nullable=False, index=True)


sa.Table(
    "measurements",
    METADATA,
    sa.Column("reading_id", sa.Text, nullable=False),
    sa.Column("batch_id", sa.Text),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("stream", sa.Text, nullable=False),
    sa.Column("cn", sa.Text, nullable=False),
    sa.Column("data_time", sa.DateTime, nullable=False),
    sa.Column("received_at", sa.DateTime),
    sa.Column("day", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    *(sa.Column(c, sa.Float) for c in ("rtd", "avg", "min", "max", "cou", "zs_rtd", "zs_avg")),
    sa.Column("flag", sa.Text),
    sa.Column("unit", sa.Text),
    sa.Column("raw_sha256", sa.Text),
    sa.Column("valid", sa.Boolean),
    sa.Column("invalid_reason", sa.Text),
    # the partition key plus the device: the only index (migration 0004)
    sa.Index("ix_measurements_day_stream_device", "day", "stream", "device_id"),
)

sa.Table(
    "quarantine",
    METADATA,
    sa.Column("reading_id", sa.Text, nullable=False),
    sa.Column("stream", sa.Text, nullable=False),
    _day(),
    sa.Column("expectation", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("row_json", sa.Text),
)

sa.Table(
    "validation_results",
    METADATA,
    sa.Column("run_id", sa.Text, nullable=False),
    _day(),
    sa.Column("stream", sa.Text, nullable=False),
    sa.Column("suite", sa.Text, nullable=False),
    sa.Column("expectation", sa.Text, nullable=False),
    sa.Column("severity", sa.Text),
    sa.Column("success", sa.Boolean),
    sa.Column("element_count", sa.Integer),
    sa.Column("unexpected_count", sa.Integer),
    sa.Column("unexpected_ids", sa.Text),
)

sa.Table(
    "cems_hourly",
    METADATA,
    sa.Column("stack_id", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text),
    sa.Column("pollutant", sa.Text, nullable=False),
    sa.Column("hour_start", sa.DateTime, nullable=False),
    _day(),
    sa.Column("n_valid_minutes", sa.Integer),
    sa.Column("mean_measured", sa.Float),
    sa.Column("o2_mean", sa.Float),
    sa.Column("mean_corrected", sa.Float),
    sa.Column("valid", sa.Boolean),
    sa.Column("reading_ids", sa.Text),
    sa.Column("zs_device_mean", sa.Float),
    sa.Column("n_review_minutes", sa.Integer),
)

sa.Table(
    "exceedances",
    METADATA,
    sa.Column("exceedance_id", sa.Text, nullable=False),
    sa.Column("stack_id", sa.Text, nullable=False),
    sa.Column("enterprise_id", sa.Text),
    sa.Column("subdistrict_id", sa.Text),
    sa.Column("pollutant", sa.Text, nullable=False),
    sa.Column("hour_start", sa.DateTime, nullable=False),
    _day(),
    sa.Column("hourly_mean", sa.Float),
    sa.Column("limit_value", sa.Float),
    sa.Column("limit_source", sa.Text),
    sa.Column("n_readings", sa.Integer),
    sa.Column("reading_ids", sa.Text),
    sa.Column("raw_sha256s", sa.Text),
)

# Derived figures (rankings, ledgers, ratios, AQI series …) have as many shapes as there are rules:
# they are kept as rows of JSON under (part, name) with their column types, rather than one SQL table
# each. ``part`` is a Beijing day (YYYY-MM-DD) for daily figures or a month (YYYY-MM) for monthly ones.
sa.Table(
    "derived",
    METADATA,
    sa.Column("part", sa.Text, nullable=False, index=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("row_json", sa.Text, nullable=False),
)

sa.Table(
    "derived_meta",
    METADATA,
    sa.Column("part", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("dtypes_json", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("built_at", sa.DateTime),
)

sa.Table(
    "partitions",
    METADATA,
    sa.Column("day", sa.Text, nullable=False, index=True),
    sa.Column("stream", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("landed_seq_max", sa.Integer),
    sa.Column("n_batches", sa.Integer),
    sa.Column("n_readings", sa.Integer),
    sa.Column("n_valid", sa.Integer),
    sa.Column("n_quarantined", sa.Integer),
    sa.Column("built_at", sa.DateTime),
)


def _profile_table(name: str, record: str, key_column: str | None) -> None:
    """A table for a profile-defined record type: common reading columns + the profile's columns."""
    from schemas.profiles import profile_items

    family, cn = _PROFILE_RECORDS[record]
    columns = [
        sa.Column("reading_id", sa.Text, nullable=False),
        sa.Column("batch_id", sa.Text),
        sa.Column("device_id", sa.Text, nullable=False, index=True),
        sa.Column("stream", sa.Text),
        sa.Column("cn", sa.Text),
        sa.Column("data_time", sa.DateTime, nullable=False),
        sa.Column("received_at", sa.DateTime),
        _day(),
        sa.Column("raw_sha256", sa.Text),
    ]
    if key_column:
        columns.append(sa.Column(key_column, sa.Text))
    for item in profile_items(family):
        if item.cn == cn and not item.is_key:
            kind = sa.Float if item.type in ("decimal", "int") else sa.Text
            # the unit's own verdict is kept beside the pipeline's validity (validation.validity)
            name_ = (
                f"unit_{item.column}" if item.column in ("valid", "invalid_reason") else item.column
            )
            columns.append(sa.Column(name_, kind))
    columns += [sa.Column("valid", sa.Boolean), sa.Column("invalid_reason", sa.Text)]
    sa.Table(name, METADATA, *columns)


_PROFILE_RECORDS = {
    "vapor_refuelling": ("vapor", "2011"),
    "vapor_station": ("vapor", "2051"),
    "rsd_pass": ("rsd", "2011"),
}
_profile_table("refuellings", "vapor_refuelling", "nozzle_id")
_profile_table("tank_pressure", "vapor_station", None)
_profile_table("rsd_passes", "rsd_pass", "pass_id")
