import { cpuUsage, hrtime } from "node:process"

/** Median, min and max of a non-empty list of samples. */
export const summarize = (samples: ReadonlyArray<number>): { median: number; min: number; max: number } => {
  if (samples.length === 0) throw new Error("summarize: no samples")
  const sorted = [...samples].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! }
}

/** Wall time and host CPU time (user+system) of one run of `body`, in µs. */
export const timed = async (
  body: () => Promise<void> | void
): Promise<{ wallMicros: number; cpuMicros: number }> => {
  const cpu0 = cpuUsage()
  const t0 = hrtime.bigint()
  await body()
  const wallMicros = Number(hrtime.bigint() - t0) / 1000
  const cpu = cpuUsage(cpu0)
  return { wallMicros, cpuMicros: cpu.user + cpu.system }
}

/**
 * Runs each named variant `rounds` times, interleaved (A B C A B C …) so that
 * drift in machine load spreads evenly over all of them.
 */
export const interleave = async <K extends string>(
  rounds: number,
  variants: Record<K, () => Promise<void> | void>
): Promise<Record<K, ReadonlyArray<{ wallMicros: number; cpuMicros: number }>>> => {
  const keys = Object.keys(variants) as Array<K>
  const out = Object.fromEntries(
    keys.map((k) => [k, [] as Array<{ wallMicros: number; cpuMicros: number }>])
  ) as Record<K, Array<{ wallMicros: number; cpuMicros: number }>>
  for (let round = 0; round < rounds; round++) {
    for (const key of keys) out[key].push(await timed(variants[key]))
  }
  return out
}
