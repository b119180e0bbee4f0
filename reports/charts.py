"""The report's charts (matplotlib, Agg, the report's CJK font), each returned as PNG bytes.

Every function takes plain DataFrames and returns :class:`~reports.model.Chart` objects, or an empty
list when there is nothing to draw. Figures are built with ``Figure`` directly (no pyplot state).
"""

from __future__ import annotations

import calendar as pycal
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import dates as mdates  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from reports.fonts import find_cjk_font  # noqa: E402
from reports.layouts import AqiCategory  # noqa: E402
from reports.model import BEIJING, Chart  # noqa: E402

DPI = 150
PANELS_PER_FIGURE = 6
WEEKDAYS_ZH = ("一", "二", "三", "四", "五", "六", "日")


@contextmanager
def _style() -> Iterator[None]:
    family = find_cjk_font().family
    params = {
        "font.family": [family, "DejaVu Sans"],
        "axes.unicode_minus": False,  # CJK fonts often lack U+2212
        "font.size": 9,
        "axes.titlesize": 10,
    }
    with matplotlib.rc_context(params):
        yield


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


# -- PM2.5 by subdistrict ------------------------------------------------------------------------


def pm25_by_subdistrict(ranking: pd.DataFrame | None) -> list[Chart]:
    """Heat map subdistrict × week of PM2.5, the two worst of each week outlined."""
    if ranking is None or ranking.empty or not {"subdistrict", "week", "pm25"} <= set(ranking):
        return []
    table = ranking.pivot_table(index="subdistrict", columns="week", values="pm25", aggfunc="mean")
    table = table.loc[table.mean(axis=1).sort_values().index]
    worst = set()
    if "bottom_two" in ranking.columns:
        flagged = ranking[ranking["bottom_two"].astype(bool)]
        worst = set(zip(flagged["subdistrict"], flagged["week"], strict=True))
    with _style():
        height = max(3.0, 0.32 * len(table) + 1.4)
        fig = Figure(figsize=(9.5, height))
        ax = fig.add_subplot()
        values = table.to_numpy(dtype=float)
        image = ax.imshow(values, aspect="auto", cmap="YlOrRd")
        ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
        ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
        for (row, col), value in np.ndenumerate(values):
            if np.isnan(value):
                continue
            shade = image.norm(value)
            ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if shade > 0.6 else "black")  # fmt: skip
            if (table.index[row], table.columns[col]) in worst:
                ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, lw=2, ec="blue"))
        ax.set_xlabel("周次")
        ax.set_title("各街道 PM2.5 周均浓度（μg/m³，蓝框：当周排名后两位）")
        fig.colorbar(image, ax=ax, label="μg/m³")
        fig.tight_layout()
        return [Chart("pm25_subdistrict", "各街道 PM2.5 周均浓度", _png(fig))]


# -- AQI calendar ---------------------------------------------------------------------------------


def category_color(aqi: float, categories: tuple[AqiCategory, ...]) -> str:
    for cat in categories:
        if aqi <= cat.upper:
            return cat.color
    return categories[-1].color


def aqi_calendar(
    aqi_daily: pd.DataFrame | None, month: str, categories: tuple[AqiCategory, ...]
) -> list[Chart]:
    """A month grid (Monday first), each day coloured by its AQI category."""
    if aqi_daily is None or aqi_daily.empty or not {"date", "aqi"} <= set(aqi_daily):
        return []
    year, mon = (int(p) for p in month.split("-"))
    by_day = {}
    for rec in aqi_daily.to_dict(orient="records"):
        day = pd.Timestamp(str(rec["date"])).date()
        if pd.notna(rec["aqi"]):
            by_day[day] = float(rec["aqi"])
    weeks = pycal.Calendar(firstweekday=0).monthdayscalendar(year, mon)
    with _style():
        fig = Figure(figsize=(8.0, 1.0 + 0.75 * len(weeks)))
        ax = fig.add_subplot()
        for row, week in enumerate(weeks):
            for col, day_no in enumerate(week):
                if day_no == 0:
                    continue
                aqi = by_day.get(date(year, mon, day_no))
                color = category_color(aqi, categories) if aqi is not None else "#DDDDDD"
                ax.add_patch(Rectangle((col, -row - 1), 0.96, 0.92, color=color))
                dark = color in ("#99004C", "#7E0023", "#FF0000")
                text = f"{day_no}日\n{aqi:.0f}" if aqi is not None else f"{day_no}日\n无数据"
                ax.text(col + 0.48, -row - 0.54, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
        for col, name in enumerate(WEEKDAYS_ZH):
            ax.text(col + 0.48, 0.2, f"周{name}", ha="center", va="center")
        ax.set_xlim(0, 7)
        ax.set_ylim(-len(weeks) - 0.1, 0.5)
        ax.axis("off")
        lows = [0.0] + [c.upper + 1 for c in categories[:-1]]
        handles = [
            Patch(color=c.color, label=f"{c.name}（{lo:.0f}–{c.upper:.0f}）")
            for c, lo in zip(categories, lows, strict=True)
        ]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        ax.set_title(f"{year}年{mon}月 空气质量指数（AQI）日历")
        fig.tight_layout()
        return [Chart("aqi_calendar", "AQI 日历", _png(fig))]


# -- exceeding stacks -----------------------------------------------------------------------------


def stack_hourly(
    hourly: pd.DataFrame | None, exceedances: pd.DataFrame | None, pollutant_zh: dict[str, str]
) -> list[Chart]:
    """Hourly corrected concentration against the limit, one panel per exceeding stack-pollutant."""
    if exceedances is None or exceedances.empty or hourly is None or hourly.empty:
        return []
    need = {"stack_id", "pollutant", "hour_start", "mean_corrected"}
    if not need <= set(hourly.columns) or not need - {"mean_corrected"} <= set(exceedances.columns):
        return []
    pairs = _exceeding_pairs(exceedances)
    charts = []
    for start in range(0, len(pairs), PANELS_PER_FIGURE):
        chunk = pairs[start : start + PANELS_PER_FIGURE]
        number = start // PANELS_PER_FIGURE + 1
        charts.append(
            Chart(
                f"stack_hourly_{number:02d}",
                f"超标排口小时折算浓度（{number}）",
                _stack_figure(chunk, hourly, exceedances, pollutant_zh),
            )
        )
    return charts


def _exceeding_pairs(exceedances: pd.DataFrame) -> list[dict]:
    group = exceedances.groupby(["stack_id", "pollutant"], sort=True)
    pairs = []
    for (stack_id, pollutant), rows in group:
        first = rows.iloc[0]
        pairs.append(
            {
                "stack_id": stack_id,
                "pollutant": pollutant,
                "label": f"{first.get('enterprise_name', '') or ''} {first.get('stack_name', stack_id) or stack_id}",
                "limit": float(rows["limit_value"].max()) if "limit_value" in rows else None,
                "hours": set(pd.to_datetime(rows["hour_start"], utc=True)),
            }
        )
    return pairs


def _stack_figure(
    chunk: list[dict], hourly: pd.DataFrame, exceedances: pd.DataFrame, names: dict[str, str]
) -> bytes:
    stamps = pd.to_datetime(hourly["hour_start"], utc=True)
    with _style():
        cols = min(2, len(chunk))
        rows = (len(chunk) + cols - 1) // cols
        fig = Figure(figsize=(11.0, 2.6 * rows + 0.4))
        for i, pair in enumerate(chunk):
            ax = fig.add_subplot(rows, cols, i + 1)
            mask = (hourly["stack_id"] == pair["stack_id"]) & (
                hourly["pollutant"] == pair["pollutant"]
            )
            sub = hourly.loc[mask].assign(_t=stamps[mask]).sort_values("_t")
            values = sub["mean_corrected"].to_numpy(dtype=float)
            if "valid" in sub.columns:
                # invalid hours are gaps, never plotted as if measured
                values = np.where(sub["valid"].fillna(False).astype(bool), values, np.nan)
            series = pd.Series(values, index=pd.DatetimeIndex(sub["_t"]).tz_convert(BEIJING))
            ax.plot(
                series.index, series.to_numpy(), lw=0.8, color="#1f77b4", label="小时均值（折算）"
            )
            name = names.get(pair["pollutant"], pair["pollutant"])
            title = f"{pair['label'].strip()} · {name}"
            if pair["limit"] is not None:
                ax.axhline(pair["limit"], color="red", ls="--", lw=1, label="标准限值")
                title += f"（限值 {pair['limit']:g}）"
            over = series[series.index.tz_convert("UTC").isin(pair["hours"])]
            ax.scatter(over.index, over.to_numpy(), s=10, color="red", zorder=3, label="超标小时")
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("mg/m³")
            ax.set_ylim(bottom=0)
            ax.margins(y=0.12)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d", tz=BEIJING))
            ax.xaxis.set_major_locator(mdates.DayLocator(interval=5, tz=BEIJING))
            ax.grid(alpha=0.3)
        # one legend for all panels, above them, so that no panel's data hides behind it
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=3, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
        return _png(fig)


# -- transmission and upload rates ----------------------------------------------------------------


def rate_chart(
    frame: pd.DataFrame | None,
    column: str,
    label_column: str,
    threshold: float,
    *,
    name: str,
    title: str,
    max_bars: int = 45,
) -> list[Chart]:
    """Bars per device (few devices) or a histogram (many), with the compliance line."""
    if frame is None or frame.empty or column not in frame.columns:
        return []
    rates = pd.to_numeric(frame[column], errors="coerce")
    with _style():
        if len(frame) <= max_bars and label_column in frame.columns:
            order = rates.sort_values().index
            labels = frame.loc[order, label_column].astype(str).tolist()
            values = rates.loc[order].to_numpy() * 100
            fig = Figure(figsize=(10.0, max(3.0, 0.12 * len(values) + 1.0)))
            ax = fig.add_subplot()
            colors = ["#d62728" if v < threshold * 100 else "#2ca02c" for v in values]
            ax.barh(range(len(values)), values, color=colors, height=0.7)
            ax.set_yticks(range(len(values)), labels, fontsize=6)
            ax.set_ylim(-0.6, len(values) - 0.4)
            ax.set_xlabel("%")
            ax.set_xlim(0, 105)
        else:
            fig = Figure(figsize=(10.0, 3.6))
            ax = fig.add_subplot()
            low = float(np.floor(min(rates.min(), threshold) * 20) * 5)  # 5-point steps
            ax.hist(rates.dropna().to_numpy() * 100, bins=np.arange(low, 101, 1.0), color="#1f77b4")
            ax.set_xlim(low, 100.5)
            ax.set_xlabel("%")
            ax.set_ylabel("数量")
        ax.axvline(threshold * 100, color="red", ls="--", label=f"达标线 {threshold * 100:.0f}%")
        below = int((rates < threshold).sum())
        ax.set_title(f"{title}（{len(frame)} 个，低于 {threshold * 100:.0f}% 的 {below} 个）")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return [Chart(name, title, _png(fig))]


# -- vapor recovery A/L ---------------------------------------------------------------------------


def al_distribution(nozzle_days: pd.DataFrame | None, low: float, high: float) -> list[Chart]:
    """Histogram of nozzle-day mean A/L ratios with the acceptable band shaded."""
    if nozzle_days is None or nozzle_days.empty:
        return []
    # the producer judges a nozzle-day on its median A/L (vapor.day_statistic): plot that if given
    choices = (("al_p50", "日中位"), ("al_mean", "日均"), ("al_ratio", ""), ("al", ""))
    column, label = next(((c, lab) for c, lab in choices if c in nozzle_days.columns), (None, ""))
    if column is None:
        return []
    values = pd.to_numeric(nozzle_days[column], errors="coerce").dropna().to_numpy()
    if not len(values):
        return []
    with _style():
        fig = Figure(figsize=(10.0, 4.0))
        ax = fig.add_subplot()
        # the axis spans the data and the acceptable band, in 0.05 steps
        bottom = np.floor(min(float(values.min()), low) * 20 - 1) / 20
        top = np.ceil(max(float(values.max()), high) * 20 + 1) / 20
        ax.hist(values, bins=np.arange(max(0.0, bottom), top + 0.05, 0.05), color="#1f77b4")
        ax.axvspan(low, high, color="green", alpha=0.15, label=f"合格范围 {low:g}–{high:g}")
        n_low, n_high = int((values < low).sum()), int((values > high).sum())
        ax.set_title(
            f"油枪{label}气液比分布（{len(values)} 个油枪日；偏低 {n_low}，偏高 {n_high}）"
        )
        ax.set_xlabel("气液比（A/L）")
        ax.set_ylabel("油枪日数")
        ax.legend()
        fig.tight_layout()
        return [Chart("vapor_al", "油枪气液比分布", _png(fig))]
