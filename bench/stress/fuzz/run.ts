/**
 * The fuzz driver: splits the inputs into slices run by worker threads, with
 * a watchdog that turns an input making no progress into a reported hang (the
 * worker is terminated and the slice resumes after that input) and a heap
 * limit on each worker that turns unbounded memory into a reported failure.
 */
import { Worker } from "node:worker_threads"
import type { FindingGroup, Tally } from "./targets.js"
import type { WorkerJob, WorkerReport } from "./worker.js"

/** Settings of a fuzz run. */
export interface FuzzOptions {
  readonly vectorsPath: string
  readonly seed: number
  readonly inputs: number
  readonly workers: number
  readonly slice: number
  readonly channelEvery: number
  readonly slowMs: number
  /** An input running this long without finishing is a hang. */
  readonly hangMs: number
  /** Old-generation limit of a worker; exceeding it is a memory failure. */
  readonly heapLimitMb: number
  readonly log: (line: string) => void
}

/** The outcome of a fuzz run. */
export interface FuzzResult {
  readonly inputs: number
  readonly frameInputs: number
  readonly bodyInputs: number
  readonly tally: Tally
  /** Distinct findings, most frequent first. */
  readonly findings: ReadonlyArray<FindingGroup>
  /** Decoder calls that broke their contract (an input can break several). */
  readonly findingCount: number
  readonly hangs: ReadonlyArray<number>
  readonly memoryFailures: ReadonlyArray<string>
  readonly slow: ReadonlyArray<{ readonly index: number; readonly ms: number }>
  readonly maxMs: number
  readonly maxMsIndex: number
  /** Largest heap growth of a slice (after full collections at its start and end), and the largest heap seen. */
  readonly heapGrowthMax: number
  readonly heapPeakMax: number
  readonly seconds: number
}

type SliceEnd =
  | { readonly kind: "done"; readonly report: WorkerReport }
  | { readonly kind: "hang"; readonly index: number }
  | { readonly kind: "crash"; readonly index: number; readonly message: string }

const runSlice = (o: FuzzOptions, start: number, count: number): Promise<SliceEnd> =>
  new Promise((resolve) => {
    const progress = new SharedArrayBuffer(4)
    const view = new Int32Array(progress)
    Atomics.store(view, 0, start)
    const job: WorkerJob = {
      vectorsPath: o.vectorsPath,
      seed: o.seed,
      start,
      count,
      channelEvery: o.channelEvery,
      slowMs: o.slowMs,
      progress
    }
    const worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData: job,
      resourceLimits: { maxOldGenerationSizeMb: o.heapLimitMb }
    })
    let settled = false
    let last = -1
    let lastChange = Date.now()
    const finish = (end: SliceEnd) => {
      if (settled) return
      settled = true
      clearInterval(watchdog)
      void worker.terminate()
      resolve(end)
    }
    const watchdog = setInterval(() => {
      const now = Atomics.load(view, 0)
      if (now !== last) {
        last = now
        lastChange = Date.now()
      } else if (Date.now() - lastChange > o.hangMs) {
        finish({ kind: "hang", index: now })
      }
    }, 250)
    worker.on("message", (report: WorkerReport) => finish({ kind: "done", report }))
    worker.on("error", (error) =>
      finish({ kind: "crash", index: Atomics.load(view, 0), message: error.message })
    )
    worker.on("exit", (code) =>
      finish({ kind: "crash", index: Atomics.load(view, 0), message: `worker exited with code ${code}` })
    )
  })

const merge = (into: Tally, from: Tally) => {
  for (const [k, v] of Object.entries(from)) {
    const t = (into[k] ??= { calls: 0, success: 0, failure: 0 })
    t.calls += v.calls
    t.success += v.success
    t.failure += v.failure
  }
}

/** Runs inputs 0 … `o.inputs - 1` of `o.seed`. */
export const runFuzz = async (o: FuzzOptions): Promise<FuzzResult> => {
  const t0 = Date.now()
  const queue: Array<{ start: number; count: number }> = []
  for (let start = 0; start < o.inputs; start += o.slice)
    queue.push({ start, count: Math.min(o.slice, o.inputs - start) })
  const result = {
    inputs: 0,
    frameInputs: 0,
    bodyInputs: 0,
    tally: {} as Tally,
    findings: new Map<string, FindingGroup>(),
    findingCount: 0,
    hangs: [] as Array<number>,
    memoryFailures: [] as Array<string>,
    slow: [] as Array<{ index: number; ms: number }>,
    maxMs: 0,
    maxMsIndex: -1,
    heapGrowthMax: 0,
    heapPeakMax: 0
  }
  let lastLog = Date.now()
  const lane = async () => {
    for (;;) {
      const next = queue.shift()
      if (next === undefined) return
      const end = await runSlice(o, next.start, next.count)
      if (end.kind === "done") {
        const r = end.report
        result.inputs += r.inputs
        result.frameInputs += r.frameInputs
        result.bodyInputs += r.bodyInputs
        merge(result.tally, r.tally)
        for (const f of r.findings) {
          result.findingCount += f.count
          const known = result.findings.get(f.signature)
          if (known === undefined) result.findings.set(f.signature, { ...f })
          else {
            known.count += f.count
            if (f.index < known.index) result.findings.set(f.signature, { ...f, count: known.count })
          }
        }
        result.slow.push(...r.slow.slice(0, Math.max(0, 20 - result.slow.length)))
        if (r.maxMs > result.maxMs) {
          result.maxMs = r.maxMs
          result.maxMsIndex = r.maxMsIndex
        }
        result.heapGrowthMax = Math.max(result.heapGrowthMax, r.heapEnd - r.heapStart)
        result.heapPeakMax = Math.max(result.heapPeakMax, r.heapPeak, r.heapEnd)
      } else {
        // The input that hung or blew the heap is reported; the slice resumes after it.
        if (end.kind === "hang") result.hangs.push(end.index)
        else result.memoryFailures.push(`input ${end.index}: ${end.message}`)
        result.inputs += end.index - next.start + 1
        const rest = next.start + next.count - (end.index + 1)
        if (rest > 0) queue.unshift({ start: end.index + 1, count: rest })
      }
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now()
        o.log(`  fuzz: ${result.inputs} of ${o.inputs} inputs, ${result.findingCount} finding(s)`)
      }
    }
  }
  await Promise.all(Array.from({ length: o.workers }, lane))
  return {
    ...result,
    findings: [...result.findings.values()].sort((a, b) => b.count - a.count),
    seconds: (Date.now() - t0) / 1000
  }
}
