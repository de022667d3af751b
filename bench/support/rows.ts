/**
 * Turning timed rounds into table rows: rates, throughputs and latency
 * percentiles, each the median over rounds with its min-max, and the host's
 * CPU time per operation (median over rounds).
 */
import { summarize } from "../lib/measure.js"
import type { Measurement } from "../lib/types.js"

/** One timed round, as `interleave` gives it. */
export interface Round {
  readonly wallMicros: number
  readonly cpuMicros: number
}

/** Operations per second over `count` operations per round. */
export const rateRow = (
  name: string,
  unit: string,
  rounds: ReadonlyArray<Round>,
  count: number,
  extra: Partial<Measurement> = {}
): Measurement => ({
  name,
  unit,
  ...summarize(rounds.map((r) => (count * 1e6) / r.wallMicros)),
  cpuMicrosPerOp: summarize(rounds.map((r) => r.cpuMicros / count)).median,
  ...extra
})

/** MB/s (10^6 bytes per second) for `bytes` per round; CPU per GiB moved is put in the note. */
export const throughputRow = (
  name: string,
  rounds: ReadonlyArray<Round>,
  bytes: number,
  extra: Partial<Measurement> = {}
): Measurement => {
  const cpuPerGiB = summarize(rounds.map((r) => (r.cpuMicros / bytes) * 2 ** 30)).median
  const note = `host CPU ${(cpuPerGiB / 1e6).toFixed(2)} s/GiB`
  return {
    name,
    unit: "MB/s",
    ...summarize(rounds.map((r) => bytes / r.wallMicros)),
    // Per 64 KiB chunk, the unit the relays move.
    cpuMicrosPerOp: cpuPerGiB / 16384,
    ...extra,
    note: extra.note === undefined ? note : `${note}; ${extra.note}`
  }
}

/** The `q`-quantile (0..1) of `values` (nearest rank). */
export const quantile = (values: Float64Array | ReadonlyArray<number>, q: number): number => {
  const sorted = Float64Array.from(values).sort()
  if (sorted.length === 0) throw new Error("quantile of nothing")
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

/** A row of per-round values already computed (latencies, sizes…): median over rounds and min-max. */
export const valueRow = (
  name: string,
  unit: string,
  values: ReadonlyArray<number>,
  extra: Partial<Measurement> = {}
): Measurement => ({ name, unit, ...summarize(values), ...extra })

/** Formats a number for prose: 1,234 / 12.3 / 1.23. */
export const fmt = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)
