"""Bureau staff read Chinese throughout: the codes, keys and sentences the producers write are
printed in Chinese (reports.vocabulary), and what cannot be translated exactly keeps its original
beside it in the workbook.

The report is built from the producers' own frames (tests/reports/producer_frames.py) and from the
hand-built data; every Latin word left in the HTML and PDF text must be on the allow-list below.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from reports import vocabulary
from reports.data import ReportData, conform
from reports.model import make_table
from reports.monthly import build_report
from tests.reports.producer_frames import MONTH, producer_report_data

#: ASCII word boundaries (``\b`` does not separate Latin letters from Chinese characters)
_L, _R = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"
#: what may stay Latin in Chinese prose, each with why
ALLOWED = (
    r"[\w/.-]+\.(?:csv|toml|py|md|xlsx)" + _R,  # data files and their sources
    r"\[[a-z0-9_.]+\]",  # a data file's key, beside its file name
    r"（(?:std|impl|plan|config)）",  # a confidence mark's code after its Chinese
    _L + r"(?:GB|HJ)(?:/T)? ?[\d.]+-\d{4}",  # standard numbers
    _L + r"(?:AQI|IAQI|PM2\.5|PM10|VOCs|NO|CO|HC|VSP|xlsx)" + _R,  # used as is in Chinese texts
    r"mg/m³|μg/m³|mg/kg|t/\(km²·30d\)|t/km²|" + _L + r"(?:km|ppm)" + _R,  # units
    _L + r"CASE-[0-9a-f]{12}" + _R,  # a case id proposed from data
    _L + r"(?:SD|ST|[SDECGPFJMr])\d+" + _R + "|" + _L + r"N3" + _R + r"|豫A\d+",  # ids, class
    r"“penalty”|" + _L + "penalty" + _R,  # the bureau's own unknown event code, echoed
)


def latin_words(text: str) -> set[str]:
    for pattern in ALLOWED:
        text = re.sub(pattern, " ", text)
    return set(re.findall(r"[A-Za-z]{2,}", text))


def html_text(path: Path) -> str:
    page = path.read_text(encoding="utf-8")
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', " ", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def producer_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("vocabulary-report")
    return build_report(MONTH, conform(producer_report_data()), out)


def test_html_and_pdf_print_no_english(producer_report, hand_data, tmp_path):
    hand = build_report(MONTH, hand_data, tmp_path)
    for paths in (producer_report, hand):
        text = html_text(paths.html)
        assert latin_words(text) == set(), paths.html
        # no raw HJ 212 code or producer key is left anywhere either
        assert not re.search(_L + r"(?:a\d{5}|opacity_pct|pm25|no_ppm)" + _R, text)
        if shutil.which("pdftotext"):
            pdf = subprocess.run(
                ["pdftotext", "-layout", str(paths.pdf), "-"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            # table cells wrap inside a file name or key: a fragment of an allowed token is fine
            allowed_tokens = " ".join(re.findall("|".join(ALLOWED), text))
            left = {w for w in latin_words(pdf) if w not in allowed_tokens}
            assert left == set(), paths.pdf


def test_producer_codes_and_sentences_are_printed_in_chinese(producer_report):
    text = html_text(producer_report.html)
    for expected in (
        # enforcement.penalties: refusals, events, state and next action
        "排口“S9”不在登记名录中",
        "未知事件类型“penalty”",
        "金额为负数（-5.0）",
        "与前面的行重复（案件、事件、日期、文书均相同）",
        "第1轮未结案时再次罚款",
        "本轮尚未罚款即送达责令改正决定",
        "尚未送达责令改正决定即复查",
        "无停产记录而恢复生产",
        "已发现超标，待处罚",
        "即超即罚",
        # enforcement.alerts through lantian.rules_monthly.alert_frames
        "无预警",
        "启动",
        "解除",
        "→ 橙色预警",
        "连续 36 小时",
        "二氧化硫减排不低于 20%",
        # supervision, sampling, dustfall, device caveats, tamper evidence
        "有效传输率低于 90%：S2",
        "硫含量 14 mg/kg，超过 10 mg/kg；检验结果为“不合格”",
        "结束日期不晚于开始日期",
        "降尘量缺失或不是数字",
        "应传 1440 条，收到有效 1200 条（83.3%）",
        "S2 的超标情况与有效传输率",  # device D2 is stack S2's
        "二氧化硫/氮氧化物 小时比值中位数在 2017-12-04 16:00 升高为 2.40 倍",  # 08:00 UTC
        "二氧化硫 连续 300 个有效分钟保持 35 不变（证据：300 条数据中的前 200 条）",
        "4 条数据：r1, r2, r3 …",
        # emission limits (schemas/data/emission_limits.csv through the stack limits)
        "GB 13271-2014；特别排放限值；GB 13271-2014 表3",
        "GB 13271-2014 表2（限值未经核实，以排污许可证为准）",
        "郑州市燃气锅炉低氮改造要求（2018年）",
        # codes and pollutant keys
        "不透光度",
        "林格曼黑度",
        "一氧化氮（NO）、不透光度",
        "柴油",
        "未装在线监控",
        "数据不足",
        "二氧化硫/氮氧化物",
    ):
        assert expected in text, expected


def test_an_untranslated_sentence_keeps_its_original_in_the_workbook_only():
    refused = pd.DataFrame(
        {
            "case_id": ["C1", "C2"],
            "reason": ["unknown stack 'S7'", "a reason no pattern knows yet"],
        }
    )
    table = make_table(refused, ["case_id", "reason"])
    assert [c.header for c in table.columns] == ["案件编号", "原因", "原因（原文）"]
    assert table.rows[0][1:] == ["排口“S7”不在登记名录中", "unknown stack 'S7'"]
    # not guessed: the unknown sentence is left as it is, and print drops the original column
    assert table.rows[1][1] == "a reason no pattern knows yet"
    assert [c.header for c in table.printed().columns] == ["案件编号", "原因"]
    exact = make_table(refused.iloc[:1], ["case_id", "reason"])
    assert [c.header for c in exact.columns] == ["案件编号", "原因"]  # nothing to keep beside


def test_a_sentence_with_an_unknown_part_is_not_taken_as_translated():
    note, exact = vocabulary.sentence("quarantined duplicate: 4; invalid flag:M: 2", "note")
    assert (note, exact) == ("隔离（重复数据）4 条；无效（数据标记 M，不计入有效数据）2 条", True)
    note, exact = vocabulary.sentence("quarantined a_new_check: 4; invalid flag:M: 2", "note")
    assert not exact and note.startswith("quarantined a_new_check: 4；")


def test_aqi_workbook_sheet_has_the_sub_indices_and_print_the_fixed_columns(producer_report):
    sheet = load_workbook(producer_report.xlsx)["空气质量日报"]
    header = [c.value for c in sheet[1]]
    assert header[:5] == ["日期", "AQI", "级别", "首要污染物", "超标污染物"]
    assert header[5:] == [
        "二氧化硫分指数",
        "二氧化硫（μg/m³）",
        "细颗粒物(PM2.5)分指数",
        "PM2.5（μg/m³）",
    ]
    first = [c.value for c in sheet[2]]
    assert first[:4] == ["2017-12-10", 230, "重度污染", "细颗粒物(PM2.5)"]
    assert first[5:] == [7, 20.0, 230, 180.0]
    page = producer_report.html.read_text(encoding="utf-8")
    assert "分指数" not in page  # print keeps the fixed column set


def test_booleans_read_back_as_objects_print_yes_no():
    frame = pd.DataFrame({"an_unlisted_flag": pd.Series([True, False, None], dtype=object)})
    table = make_table(frame, ["an_unlisted_flag"])
    assert [row[0] for row in table.rows] == ["是", "否", ""]


def test_pollutant_lists_translate_item_by_item_or_not_at_all():
    assert vocabulary.pollutant("a21026、a34013") == "二氧化硫、颗粒物"
    assert vocabulary.pollutant("a34004,a34002") == "细颗粒物、可吸入颗粒物"
    assert vocabulary.pollutant("o3_8h") == "臭氧8小时"
    assert vocabulary.pollutant("a21026、unknown") == "a21026、unknown"  # never half-translated


def test_empty_report_still_builds(tmp_path):
    paths = build_report(MONTH, ReportData(), tmp_path)
    assert latin_words(html_text(paths.html)) == set()
