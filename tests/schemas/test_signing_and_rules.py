from __future__ import annotations

from schemas import rules, signing


def test_signature_covers_every_part():
    key = signing.derive_key("s3cret", "DEV1")
    args = ("POST", "/v1/batches", 1_512_000_000, "DEV1", b"body")
    sig = signing.sign(key, *args)
    assert signing.verify(key, *args, sig)
    assert signing.verify(key, *args, sig.upper())
    for i, changed in enumerate(("GET", "/v1/other", 1_512_000_001, "DEV2", b"bodx")):
        tampered = list(args)
        tampered[i] = changed
        assert not signing.verify(key, *tampered, sig), f"part {i} is not covered"


def test_key_depends_on_secret_and_device():
    assert signing.derive_key("a", "DEV1") != signing.derive_key("b", "DEV1")
    assert signing.derive_key("a", "DEV1") != signing.derive_key("a", "DEV2")
    assert len(signing.derive_key("a", "DEV1")) == 64


def test_every_threshold_names_its_source_and_mark():
    table = rules.thresholds()
    assert table["stack.effective_transmission_min"].value == 0.90
    assert table["cems.hour_min_valid_minutes"].value == 45
    for entry in table.values():
        assert entry.source.strip(), entry.name
        assert entry.mark in {"std", "impl", "plan", "config"}, entry.name


def test_limit_table_rows_have_sources():
    rows = rules.emission_limits()
    coal_new_so2 = [
        r
        for r in rows
        if r["fuel"] == "coal" and r["category"] == "new" and r["pollutant"] == "a21026"
    ]
    assert [float(r["limit_mg_m3"]) for r in coal_new_so2] == [300.0]
    assert all(r["source"] and r["mark"] in {"std", "config"} for r in rows)


def test_2005_codes_map_to_2017():
    mapping = rules.code_2005_to_2017()
    assert mapping["02"] == "a21026"
    assert mapping["S01"] == "a19001"
    assert mapping["01"] == "a34013"
