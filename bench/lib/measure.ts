/**
 * Timing and summarising: interleaved rounds of wall and host CPU time, and
 * the table rows made of them — each figure the median over rounds with its
 * min-max, and the host's CPU time per operation.
 */
import { constants, PerformanceObserver } from "node:perf_hooks"
import { cpuUsage, hrtime, threadCpuUsage } from "node:process"
import type { Measurement } from "./types.js"

/**
 * One timed round: wall time and host CPU time (user+system), in µs; of that CPU time, the main thread's (the rest
 * is V8's helper threads — concurrent marking and sweeping — and libuv's pool); and the full (mark-compact) garbage
 * collections V8 ran meanwhile.
 */
export interface Round {
  readonly wallMicros: number
  readonly cpuMicros: number
  readonly mainCpuMicros: number
  readonly fullGcs: number
}

// Full collections seen so far, counted from the moment the first round is timed.
let fullGcs = 0
let gcObserver: PerformanceObserver | undefined
const countFullGcs = () => {
  if (gcObserver !== undefined) return
  gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
        fullGcs++
  })
  gcObserver.observe({ entryTypes: ["gc"] })
}

/** Median, min and max of a non-empty list of samples. */
export const summarize = (samples: ReadonlyArray<number>): { median: number; min: number; max: number } => {
  if (samples.length === 0) throw new Error("summarize: no samples")
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! }
}

/** Wall time, host CPU time (the main thread's apart) and full GCs of one run of `body`. */
export const timed = async (body: () => Promise<void> | void): Promise<Round> => {
  countFullGcs()
  const gcs0 = fullGcs
  const cpu0 = cpuUsage()
  const main0 = threadCpuUsage()
  const t0 = hrtime.bigint()
  await body()
  const wallMicros = Number(hrtime.bigint() - t0) / 1000
  const main = threadCpuUsage(main0)
  const cpu = cpuUsage(cpu0)
  // GC entries are delivered a turn after the collection: one turn lets the round's last ones arrive.
  await new Promise<void>((resolve) => setImmediate(resolve))
  return {
    wallMicros,
    cpuMicros: cpu.user + cpu.system,
    mainCpuMicros: main.user + main.system,
    fullGcs: fullGcs - gcs0
  }
}

/**
 * Runs each named variant `rounds` times, interleaved (A B C A B C …) so that
 * drift in machine load spreads evenly over all of them; `warmup` whole
 * interleaved passes run first, untimed, until V8 has compiled what the
 * variants run.
 */
export const interleave = async <K extends string>(
  rounds: number,
  variants: Record<K, () => Promise<void> | void>,
  warmup = 0
): Promise<Record<K, ReadonlyArray<Round>>> => {
  const keys = Object.keys(variants) as Array<K>
  for (let pass = 0; pass < warmup; pass++) for (const key of keys) await variants[key]()
  const out = Object.fromEntries(keys.map((k) => [k, [] as Array<Round>])) as Record<K, Array<Round>>
  for (let round = 0; round < rounds; round++) {
    for (const key of keys) out[key].push(await timed(variants[key]))
  }
  return out
}

/** Operations per second over `count` operations per round, with the host CPU µs per operation. */
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

/**
 * MB/s (10^6 bytes per second) for `bytes` per round; host CPU per 64 KiB
 * chunk (the unit the relays move), and per GiB in the note when `cpuNote`.
 */
export const throughputRow = (
  name: string,
  rounds: ReadonlyArray<Round>,
  bytes: number,
  extra: Partial<Measurement> = {},
  cpuNote = true
): Measurement => {
  const cpuPerGiB = summarize(rounds.map((r) => (r.cpuMicros / bytes) * 2 ** 30)).median
  const note = cpuNote ? `host CPU ${(cpuPerGiB / 1e6).toFixed(2)} s/GiB` : undefined
  const joined = [note, extra.note].filter((n) => n !== undefined).join("; ")
  return {
    name,
    unit: "MB/s",
    ...summarize(rounds.map((r) => bytes / r.wallMicros)),
    cpuMicrosPerOp: cpuPerGiB / 16384,
    ...extra,
    ...(joined === "" ? {} : { note: joined })
  }
}

/** A row of per-round values already computed (latencies, sizes…): median over rounds and min-max. */
export const valueRow = (
  name: string,
  unit: string,
  values: ReadonlyArray<number>,
  extra: Partial<Measurement> = {}
): Measurement => ({ name, unit, ...summarize(values), ...extra })

/** The `q`-quantile (0..1) of `values` (nearest rank). */
export const quantile = (values: Float64Array | ReadonlyArray<number>, q: number): number => {
  const sorted = Float64Array.from(values).sort()
  if (sorted.length === 0) throw new Error("quantile of nothing")
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** Formats a number for tables and prose: 1,234 / 12.3 / 1.23. */
export const fmt = (n: number): string =>
  Math.abs(n) >= 100 ? Math.round(n).toLocaleString("en-US") : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2)

/** "met" or "missed", for the verdict lines under a table. */
export const verdict = (met: boolean): string => (met ? "met" : "missed")
