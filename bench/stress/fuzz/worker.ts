/**
 * A fuzz worker: runs inputs `start … start+count-1` of a seed, publishing the
 * index it is on in shared memory (so the parent can tell a hang, and which
 * input hung, without any message per input), and posts its tally, findings,
 * slow inputs and heap readings at the end.
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { parentPort, workerData } from "node:worker_threads"
import { loadCorpus } from "./corpus.js"
import type { FindingGroup, Tally } from "./targets.js"
import { isFrameInput, runInput, signatureOf } from "./targets.js"

/** What the parent sends. */
export interface WorkerJob {
  readonly vectorsPath: string
  readonly seed: number
  readonly start: number
  readonly count: number
  /** Every n-th frame input also goes through the decodeFrames channel. */
  readonly channelEvery: number
  /** An input taking longer than this is reported as slow. */
  readonly slowMs: number
  /** Int32Array over a SharedArrayBuffer: [0] = index being run. */
  readonly progress: SharedArrayBuffer
}

/** What the worker posts back. */
export interface WorkerReport {
  readonly inputs: number
  readonly frameInputs: number
  readonly bodyInputs: number
  readonly tally: Tally
  /** Distinct findings (by target, kind and message), each with its count and first input. */
  readonly findings: ReadonlyArray<FindingGroup>
  readonly slow: ReadonlyArray<{ readonly index: number; readonly ms: number }>
  readonly maxMs: number
  readonly maxMsIndex: number
  readonly heapStart: number
  readonly heapEnd: number
  readonly heapPeak: number
}

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void
const heap = () => {
  gc()
  return getHeapStatistics().used_heap_size
}

const job = workerData as WorkerJob
const progress = new Int32Array(job.progress)
const corpus = loadCorpus(job.vectorsPath)
const tally: Tally = {}
const findings = new Map<string, FindingGroup>()
const slow: Array<{ index: number; ms: number }> = []
let maxMs = 0
let maxMsIndex = -1
let frameInputs = 0
let heapPeak = 0
const heapStart = heap()

for (let index = job.start; index < job.start + job.count; index++) {
  Atomics.store(progress, 0, index)
  const t0 = performance.now()
  if (isFrameInput(index)) frameInputs++
  const found = runInput(
    job.seed,
    index,
    corpus,
    isFrameInput(index) && frameInputs % job.channelEvery === 0,
    tally
  )
  const ms = performance.now() - t0
  if (ms > maxMs) {
    maxMs = ms
    maxMsIndex = index
  }
  // Wall time also counts the moments this thread was not scheduled (the machine is shared): a slow
  // input is run once more, and reported only when it is slow again.
  if (ms > job.slowMs && slow.length < 20) {
    const again = performance.now()
    runInput(job.seed, index, corpus, false, {})
    const rerun = performance.now() - again
    if (rerun > job.slowMs) slow.push({ index, ms: Math.min(ms, rerun) })
  }
  for (const finding of found) {
    const signature = signatureOf(finding)
    const group = findings.get(signature)
    if (group !== undefined) group.count++
    else if (findings.size < 50) findings.set(signature, { ...finding, signature, count: 1, index })
  }
  if ((index - job.start) % 50_000 === 49_999)
    heapPeak = Math.max(heapPeak, getHeapStatistics().used_heap_size)
}

const report: WorkerReport = {
  inputs: job.count,
  frameInputs,
  bodyInputs: job.count - frameInputs,
  tally,
  findings: [...findings.values()],
  slow,
  maxMs,
  maxMsIndex,
  heapStart,
  heapEnd: heap(),
  heapPeak
}
parentPort!.postMessage(report)
