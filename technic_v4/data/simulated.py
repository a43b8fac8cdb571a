"""The simulated market (embedded default): deterministic daily bars for the universe in `simulated_universe`.

Returns are a factor model — market (in regimes: bull, sideways, bear, crisis), sector, rates, plus fat-tailed
(Student-t) idiosyncratic noise and per-symbol trend epochs — so scans find real trends, breakdowns and regimes.
Every random draw comes from an RNG keyed by (seed, stream, session index), so the history does not change when the
market is extended by a day: a scan tomorrow sees exactly the bars a scan today saw, plus one new day.

Prices are raw (unadjusted): a split on day t scales that day's and later prices by split_from/split_to, exactly as
Polygon's `adjusted=false` bars do. `adjusted=True` divides the split out as of the market's last session.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from technic_v4.calendar import NY, is_trading_day, last_completed_session, session_close, trading_days
from technic_v4.data.columns import DAY_COLUMNS, RANGE_COLUMNS, REFERENCE_COLUMNS, SPLIT_COLUMNS, conform, empty_frame
from technic_v4.data.source import MarketDataSource
from technic_v4.data.simulated_universe import BOND_VOL, MARKET_VOL, SECTOR_NAMES, SECTOR_VOL, build_universe

DEFAULT_START = dt.date(2023, 1, 3)

# Market regimes: (mean length in sessions, daily market drift, volatility multiplier). Index = state.
REGIMES = ((90, 0.0007, 0.85), (60, 0.0, 1.0), (45, -0.0011, 1.5), (12, -0.0030, 2.6))
REGIME_NAMES = ("bull", "sideways", "bear", "crisis")
# Transition from each state to the next one (rows sum to 1): crises come out of bears and end in rebounds.
REGIME_NEXT = np.array([[0, 0.55, 0.40, 0.05], [0.6, 0, 0.35, 0.05], [0.45, 0.35, 0, 0.20], [0.75, 0.05, 0.20, 0]])
TREND_EPOCH = 63  # sessions per stock-specific drift epoch (about a quarter)
TREND_DRIFT = 0.0016  # std of a stock's daily drift within an epoch: trends of ±10 % a quarter are common
T_DOF = 4.0  # Student-t degrees of freedom for fat tails
MAX_REGIME_SESSIONS = 40_000  # the regime chain is drawn once this far ahead (about 160 years)


def _unit_t(rng: np.random.Generator, size) -> np.ndarray:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(T_DOF, size) / np.sqrt(T_DOF / (T_DOF - 2))


class SimulatedMarket:
    """A deterministic market from `seed` with `n_symbols` stocks ever listed (plus the index/macro ETFs).

    `sessions` are the real XNYS sessions from `start` to `end` (default: the last completed session).
    """

    def __init__(self, seed: int = 7, n_symbols: int = 8000, start: dt.date = DEFAULT_START, end: dt.date | None = None):
        if n_symbols < 1:
            raise ValueError(f"n_symbols must be >= 1, got {n_symbols}")
        self.seed, self.n_symbols, self.start = seed, n_symbols, start
        self.end = end or last_completed_session()
        self.sessions: list[dt.date] = trading_days(start, self.end)
        if not self.sessions:
            raise ValueError(f"no XNYS sessions between {start} and {self.end}")
        self._index = {d: i for i, d in enumerate(self.sessions)}
        self.u = build_universe(seed, n_symbols, start)
        self.symbols: np.ndarray = self.u.symbols
        self._col = pd.Index(self.symbols)

    def __repr__(self) -> str:
        return f"SimulatedMarket(seed={self.seed}, n_symbols={self.n_symbols}, {self.start}..{self.end})"

    # ---- the price paths (computed once, lazily) ---------------------------------------------------------------

    @cached_property
    def regimes(self) -> np.ndarray:
        """Market regime state per session, drawn once from the seed (independent of `end`)."""
        rng = np.random.default_rng([self.seed, 3])
        states = np.empty(MAX_REGIME_SESSIONS, dtype=np.int8)
        t, state = 0, 0
        while t < MAX_REGIME_SESSIONS:
            length = 1 + rng.geometric(1.0 / REGIMES[state][0])
            states[t : t + length] = state
            t += length
            state = int(rng.choice(4, p=REGIME_NEXT[state]))
        return states[: len(self.sessions)]

    def _return_rows(self):
        """Each session's (N,) daily log returns of the economic (split-free) price, oldest first (the first is 0)."""
        u, T, N = self.u, len(self.sessions), len(self.symbols)
        drift_m = np.array([r[1] for r in REGIMES])[self.regimes]
        volm = np.array([r[2] for r in REGIMES])[self.regimes]
        n_sec = len(SECTOR_NAMES)
        sec = np.clip(u.sector_idx, 0, None)
        has_sector = u.sector_idx >= 0
        epoch_drift = {}
        for t in range(T):
            rng = np.random.default_rng([self.seed, 2, t])
            m = drift_m[t] + MARKET_VOL * volm[t] * _unit_t(rng, 1)[0]
            s = SECTOR_VOL * np.sqrt(volm[t]) * _unit_t(rng, n_sec)
            b = BOND_VOL * rng.standard_normal()
            idio = u.idio_vol * (1 + 0.35 * (volm[t] - 1)) * _unit_t(rng, N)
            e = t // TREND_EPOCH
            if e not in epoch_drift:
                epoch_drift[e] = TREND_DRIFT * np.random.default_rng([self.seed, 4, e]).standard_normal(N)
            row = (
                u.beta * m
                + np.where(has_sector, u.sector_load * s[sec], 0.0)
                + u.bond_load * b
                + idio
                + u.drift_const
                + u.drift_scale * epoch_drift[e]
            )
            yield np.zeros(N) if t == 0 else row

    @cached_property
    def _economic_close(self) -> np.ndarray:
        """(T, N) close in start-share units (no splits): price0 · exp(cumulative return). Filled a session at a
        time (the same additions as np.cumsum, so the same numbers): the one (T, N) array is the only one held, where
        the whole-matrix form held four at once (4 GB peak at 60,000 symbols)."""
        close = np.empty((len(self.sessions), len(self.symbols)))
        total = np.zeros(len(self.symbols))
        for t, returns in enumerate(self._return_rows()):
            total = total + returns
            close[t] = self.u.price0 * np.exp(total)
        return close

    @cached_property
    def _splits_executed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(session index, column, split_from/split_to) of every split inside the market's sessions, in table order."""
        sp = self.u.splits
        inside = sp["exec_idx"].to_numpy() < len(self.sessions)
        return (sp["exec_idx"].to_numpy()[inside], sp["col"].to_numpy()[inside],
                (sp["split_from"] / sp["split_to"]).to_numpy()[inside])

    def _split_factor(self, t: int) -> np.ndarray:
        """(N,) raw/economic price factor at session t: product of split_from/split_to over splits executed on or
        before t, multiplied in the splits' order. Per session, not a (T, N) matrix: 470 MB at 60,000 symbols."""
        if t < 0:
            t += len(self.sessions)
        at, col, ratio = self._splits_executed
        f = np.ones(len(self.symbols))
        done = at <= t
        np.multiply.at(f, col[done], ratio[done])  # unbuffered, in order: the same products as one split at a time
        return f

    @cached_property
    def _has_bar(self) -> np.ndarray:
        """(T, N) True where a symbol traded: listed, not delisted, not halted, not randomly skipped."""
        u, T = self.u, len(self.sessions)
        t = np.arange(T)[:, None]
        listed = (t >= u.ipo_idx) & (t < u.delist_idx)
        # Thin names skip days; any name misses one now and then (a halt, a bad print the vendor dropped).
        p_skip = np.where(u.base_volume * u.price0 < 2e5, 0.03, 0.0004)
        skip = np.empty((T, len(self.symbols)), dtype=bool)
        for i in range(T):  # per-session RNG so that extending the market never changes an earlier day
            skip[i] = np.random.default_rng([self.seed, 7, i]).random(len(self.symbols)) < p_skip
        ok = listed & ~skip
        for h in u.long_halts.itertuples(index=False):
            ok[h.start_idx : h.start_idx + h.length, h.col] = False
        ok[:, u.is_etf] = listed[:, u.is_etf]  # the ETFs always trade
        return ok

    # ---- one day's bars -----------------------------------------------------------------------------------------

    def session_index(self, day: dt.date) -> int | None:
        return self._index.get(pd.Timestamp(day).date())

    def _bars(self, t: int, adjusted: bool) -> dict[str, np.ndarray]:
        """Open/high/low/close/volume/vwap/transactions for session t, all symbols (NaN where no bar)."""
        u = self.u
        rng = np.random.default_rng([self.seed, 6, t])
        N = len(self.symbols)
        close_e = self._economic_close[t]
        prev_e = self._economic_close[t - 1] if t > 0 else close_e * np.exp(-0.002 * rng.standard_normal(N))
        rv = u.range_vol
        open_e = prev_e * np.exp(0.35 * rv * _unit_t(rng, N))
        wick = np.abs(rng.standard_normal((2, N))) * 0.45 * rv
        high_e = np.maximum(open_e, close_e) * np.exp(wick[0])
        low_e = np.minimum(open_e, close_e) * np.exp(-wick[1])
        move = np.abs(np.log(close_e / prev_e)) / rv
        # Volume follows the size of the move, with occasional news spikes (about one day in 60).
        spike = np.where(rng.random(N) < 1 / 60, rng.uniform(2.0, 6.0, N), 1.0)
        volume_e = u.base_volume * np.exp(0.3 * rng.standard_normal(N) - 0.045) * (0.75 + 0.35 * move) * spike
        factor = self._split_factor(-1 if adjusted else t)
        has = self._has_bar[t]
        out = {
            "open": open_e * factor,
            "high": high_e * factor,
            "low": low_e * factor,
            "close": close_e * factor,
            "volume": np.round(volume_e / factor),
        }
        out["vwap"] = (out["high"] + out["low"] + 2 * out["close"]) / 4
        out["transactions"] = np.maximum(1.0, np.round(volume_e / u.trade_size))
        for k in ("open", "high", "low", "close", "vwap"):
            out[k] = np.round(out[k], 4)
        return {k: np.where(has, v, np.nan) for k, v in out.items()}

    def day(self, day: dt.date, adjusted: bool = False) -> pd.DataFrame:
        """Every traded symbol's bar on `day` (DAY_COLUMNS); empty on weekends, holidays and outside the market."""
        t = self.session_index(day)
        if t is None:
            return empty_frame(DAY_COLUMNS)
        bars = self._bars(t, adjusted)
        has = np.isfinite(bars["close"])
        return conform(pd.DataFrame({"symbol": self.symbols[has], **{k: v[has] for k, v in bars.items()}}), DAY_COLUMNS)

    def snapshot(self, day: dt.date, fraction: float = 0.5) -> pd.DataFrame:
        """Bars so far on `day` after `fraction` of the session (0 < fraction <= 1): partial range and volume."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        full = self.day(day)
        if full.empty:
            return full
        w = np.sqrt(fraction)  # price has travelled about sqrt(fraction) of the day's move
        part = full.copy()
        part["close"] = np.round(full["open"] + w * (full["close"] - full["open"]), 4)
        part["high"] = np.maximum(np.maximum(part["open"], part["close"]), full["open"] + w * (full["high"] - full["open"]))
        part["low"] = np.minimum(np.minimum(part["open"], part["close"]), full["open"] + w * (full["low"] - full["open"]))
        part["volume"] = np.round(full["volume"] * fraction)
        part["transactions"] = np.maximum(1.0, np.round(full["transactions"] * fraction))
        part["vwap"] = (part["high"] + part["low"] + 2 * part["close"]) / 4
        return part

    def ticker_range(self, symbol: str, start: dt.date, end: dt.date, adjusted: bool = False) -> pd.DataFrame:
        """One symbol's bars in [start, end] (RANGE_COLUMNS); empty for an unknown symbol."""
        col = self._col.get_indexer([symbol])[0]
        ts = [self._index[d] for d in trading_days(start, end) if d in self._index]
        if col < 0 or not ts:
            return empty_frame(RANGE_COLUMNS)
        rows = {k: [] for k in ("open", "high", "low", "close", "volume", "vwap", "transactions")}
        dates = []
        for t in ts:  # one symbol: a short loop over days; this is the slow per-symbol path by design
            b = self._bars(t, adjusted)
            if np.isfinite(b["close"][col]):
                dates.append(self.sessions[t])
                for k in rows:
                    rows[k].append(b[k][col])
        return conform(pd.DataFrame({"date": pd.to_datetime(dates), **rows}), RANGE_COLUMNS)

    # ---- reference data --------------------------------------------------------------------------------------------

    def _as_of_index(self, as_of: dt.date | None) -> int:
        if as_of is None:
            return len(self.sessions) - 1
        return int(np.searchsorted(np.array(self.sessions, dtype="datetime64[D]"), np.datetime64(as_of), "right")) - 1

    def shares_outstanding(self, as_of: dt.date | None = None) -> np.ndarray:
        """Shares per symbol after the splits executed on or before `as_of`."""
        t = max(self._as_of_index(as_of), 0)
        return np.round(self.u.shares0 / self._split_factor(t))

    def list_dates(self) -> np.ndarray:
        ipo = self.u.ipo_idx
        late = np.array([self.sessions[i].isoformat() if i < len(self.sessions) else None for i in ipo], dtype=object)
        return np.where(ipo > 0, late, self.u.old_list_date)

    def reference(self, as_of: dt.date | None = None, include_inactive: bool = False) -> pd.DataFrame:
        """The listing on `as_of` (REFERENCE_COLUMNS + sic_description); delisted names only with include_inactive."""
        t = self._as_of_index(as_of)
        u = self.u
        listed = u.ipo_idx <= t
        active = listed & (u.delist_idx > t)
        keep = listed if include_inactive else active
        df = pd.DataFrame(
            {
                "symbol": u.symbols,
                "name": u.name,
                "type": u.type,
                "active": active,
                "primary_exchange": u.exchange,
                "sic_code": u.sic_code,
                "sector": u.sector,
                "industry": u.industry,
                "shares_outstanding": self.shares_outstanding(as_of),
                "list_date": self.list_dates(),
            }
        )[keep]
        out = conform(df.reset_index(drop=True), REFERENCE_COLUMNS)
        out["sic_description"] = u.sic_description[keep]
        return out

    def ticker_details(self, symbol: str, as_of: dt.date | None = None) -> dict | None:
        """Polygon's ticker-details `results` object for `symbol`, or None if it was never listed by `as_of`."""
        col = self._col.get_indexer([symbol])[0]
        t = self._as_of_index(as_of)
        if col < 0 or self.u.ipo_idx[col] > t:
            return None
        shares = float(self.shares_outstanding(as_of)[col])
        last_close = self._economic_close[max(min(t, self.u.delist_idx[col] - 1), 0), col]
        d = {
            "ticker": symbol,
            "name": self.u.name[col],
            "market": "stocks",
            "locale": "us",
            "primary_exchange": self.u.exchange[col],
            "type": self.u.type[col],
            "active": bool(self.u.delist_idx[col] > t),
            "currency_name": "usd",
            "list_date": self.list_dates()[col],
            "share_class_shares_outstanding": shares,
            "weighted_shares_outstanding": shares,
            "market_cap": round(float(last_close * self.u.shares0[col]), 2),
        }
        if self.u.sic_code[col] is not None:
            d["sic_code"], d["sic_description"] = self.u.sic_code[col], self.u.sic_description[col]
        return d

    def splits(self, since: dt.date | None = None, until: dt.date | None = None) -> pd.DataFrame:
        """Splits executed in [since, until] within the simulated sessions (SPLIT_COLUMNS)."""
        s = self.u.splits[self.u.splits["exec_idx"] < len(self.sessions)]
        dates = pd.to_datetime([self.sessions[i] for i in s["exec_idx"]])
        df = pd.DataFrame(
            {"symbol": self.symbols[s["col"].to_numpy()], "execution_date": dates,
             "split_from": s["split_from"].to_numpy(), "split_to": s["split_to"].to_numpy()}
        )
        if since is not None:
            df = df[df["execution_date"] >= pd.Timestamp(since)]
        if until is not None:
            df = df[df["execution_date"] <= pd.Timestamp(until)]
        return conform(df.reset_index(drop=True), SPLIT_COLUMNS)


@lru_cache(maxsize=4)
def shared_market(seed: int, n_symbols: int, end: dt.date | None = None) -> SimulatedMarket:
    """One market per (seed, size, end) per process: repeated scans reuse its computed paths."""
    return SimulatedMarket(seed=seed, n_symbols=n_symbols, end=end)


class SimulatedSource(MarketDataSource):
    """The simulated market behind the one source interface. Each call counts as one request of its endpoint kind,
    exactly as many as the Polygon source would send, so API-call metrics mean the same thing on both."""

    name = "simulated"
    simulated = True

    def __init__(self, seed: int = 7, n_symbols: int = 8000, market: SimulatedMarket | None = None):
        super().__init__()
        self.market = market or shared_market(seed, n_symbols)

    def _market_for(self, day: dt.date) -> SimulatedMarket:
        if day <= self.market.end:
            return self.market
        return shared_market(self.market.seed, self.market.n_symbols, day)  # a newer session than we were built with

    async def grouped_daily(self, day: dt.date) -> pd.DataFrame:
        self.counter.record("grouped_daily", retry=False, status=200)
        return self._market_for(day).day(day)

    async def reference(self) -> pd.DataFrame:
        self.counter.record("tickers", retry=False, status=200)
        return self.market.reference()

    async def splits(self, since: dt.date | None = None) -> pd.DataFrame:
        self.counter.record("splits", retry=False, status=200)
        return self.market.splits(since=since)

    async def snapshot(self) -> pd.DataFrame:
        """Today's session so far (by the wall clock); outside a session, the last session's full bars."""
        self.counter.record("snapshot", retry=False, status=200)
        now = dt.datetime.now(tz=NY)
        today = now.date()
        if not is_trading_day(today):
            return self.market.day(self.market.end)
        # 6.5-hour session: the share of it that has passed (a half day closes early, session_close knows)
        fraction = min(max((now - session_close(today)).total_seconds() / 23400 + 1, 0.01), 1.0)
        return self._market_for(today).snapshot(today, fraction)

    async def ticker_range(self, symbol: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        self.counter.record("range", retry=False, status=200)
        return self.market.ticker_range(symbol, start, end)
