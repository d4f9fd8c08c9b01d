// The TypeScript backtest-kit (npm) on the candles bench/peers.py wrote: the rule of bench/year.py as a
// getSignal, through Backtest.run. Prints one JSON line with seconds and trades.
// Usage: node bench/peers/node/run.mjs CANDLES_FILE MINUTES START_MS INTERVAL_MIN FAST SLOW TP_PCT SL_PCT LIFETIME_MIN CACHE
// CACHE: "json" keeps the library's default candle cache (one JSON file per candle under ./dump), "off" turns
// it off (PersistCandleAdapter.useDummy()): the candles come from memory here, as in the other engines.
import { readFileSync } from "node:fs";

const [file, minutes, start, intervalMin, fast, slow, tpPct, slPct, lifetime, cache] = process.argv.slice(2);
const MINUTES = Number(minutes);
const START = Number(start);
const FAST = Number(fast);
const SLOW = Number(slow);
const TP = Number(tpPct);
const SL = Number(slPct);
const MINUTE = 60_000;

let lib;
try {
  lib = await import("backtest-kit");
} catch (e) {
  console.log(JSON.stringify({ status: `cannot load backtest-kit: ${String(e.message).split("\n")[0]}` }));
  process.exit(0);
}
const { addExchangeSchema, addFrameSchema, addStrategySchema, Backtest, getCandles, listenError, PersistCandleAdapter } = lib;
if (cache === "off") PersistCandleAdapter.useDummy();
const version = JSON.parse(readFileSync(new URL("./node_modules/backtest-kit/package.json", import.meta.url))).version;

// Raw little-endian float64 rows: timestamp, open, high, low, close, volume.
const buf = readFileSync(file);
const a = new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
const n = a.length / 6;
const first = a[0];

addExchangeSchema({
  exchangeName: "synthetic",
  // The rule reads 1m candles only (and the library's VWAP does too).
  getCandles: async (symbol, interval, since, limit) => {
    if (interval !== "1m") throw new Error(`only 1m candles here, asked for ${interval}`);
    const i0 = Math.max(0, Math.ceil((since.getTime() - first) / MINUTE));
    const i1 = Math.min(n, i0 + limit);
    const out = new Array(Math.max(0, i1 - i0));
    for (let i = i0; i < i1; i++) {
      const k = i * 6;
      out[i - i0] = { timestamp: a[k], open: a[k + 1], high: a[k + 2], low: a[k + 3], close: a[k + 4], volume: a[k + 5] };
    }
    return out;
  },
  formatPrice: async (symbol, price) => price.toFixed(2),
  formatQuantity: async (symbol, quantity) => quantity.toFixed(8),
});

addFrameSchema({
  frameName: "year",
  interval: "1m",
  startDate: new Date(START),
  endDate: new Date(START + (MINUTES - 1) * MINUTE),
});

// Mean summed left to right, as ours' rule sums it.
const mean = (xs, from, to) => {
  let s = 0;
  for (let i = from; i < to; i++) s += xs[i];
  return s / (to - from);
};

addStrategySchema({
  strategyName: "rule",
  interval: `${intervalMin}m`,
  getSignal: async (symbol, when, currentPrice) => {
    const c = await getCandles(symbol, "1m", SLOW + 1);
    if (c.length < SLOW + 1) return null;
    const closes = c.map((x) => x.close);
    const m = closes.length;
    const fastNow = mean(closes, m - FAST, m);
    const slowNow = mean(closes, m - SLOW, m);
    const fastPrev = mean(closes, m - 1 - FAST, m - 1);
    const slowPrev = mean(closes, m - 1 - SLOW, m - 1);
    let k;
    if (fastPrev <= slowPrev && fastNow > slowNow) k = 1;
    else if (fastPrev >= slowPrev && fastNow < slowNow) k = -1;
    else return null;
    return {
      position: k > 0 ? "long" : "short",
      priceTakeProfit: currentPrice * (1 + (k * TP) / 100),
      priceStopLoss: currentPrice * (1 - (k * SL) / 100),
      minuteEstimatedTime: Number(lifetime),
    };
  },
});

const errors = [];
listenError((e) => errors.push(e));
const t0 = performance.now();
let trades = 0;
for await (const result of Backtest.run("BTCUSDT", { strategyName: "rule", exchangeName: "synthetic", frameName: "year" })) {
  if (result.action === "closed") trades += 1;
}
const seconds = (performance.now() - t0) / 1000;
const out = { seconds, trades, version };
if (errors.length) out.note = `${errors.length} errors (first: ${String(errors[0]?.message ?? errors[0])})`;
console.log(JSON.stringify(out));
process.exit(0);
