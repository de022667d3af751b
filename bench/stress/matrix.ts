/**
 * The fault matrix: every fault the guest can inject × every step of the
 * standard lifecycle (see lifecycle.ts). A cell is one fresh run — guest and
 * host in this process over Unix sockets in a directory of their own — with
 * the fault armed so that it strikes at that step, followed by the checks:
 * the outcome is a success or a typed error within 2 s of the fault (of the
 * caller's deadline when the guest stays silent), closing the scope is
 * bounded, and file descriptors, fibers, child processes, socket files and
 * heap are back at their starting level, with no unhandled rejection.
 */
import { mkdirSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { Fault } from "@gcs-bridge/guest"
import type { TransportService } from "@gcs-bridge/transport"
import { Duration, Effect, Metric } from "effect"
import type { LifecycleResult, Outcome, Step, StepRecord } from "./lifecycle.js"
import { closeBound, runLifecycle, Steps } from "./lifecycle.js"
import { CountingLogger, resetLogs } from "./logs.js"
import { childProcesses, heapAfterGc, openFds, settle } from "../support/probes.js"
import { processProblems } from "./probes.js"

/**
 * Index of the first message the guest writes at each step, counted from 0
 * on the connection: 0 the NegotiateProtocol answer, 1 Create, 2 Start,
 * 3 the init's ExecuteProcess, 4 the three-stdio ExecuteProcess, 5 its
 * WaitForProcess answer (sent when the process exits at the end of its stdio),
 * 6 SignalProcess, 7 ShutdownGraceful, 8 the first message of the close
 * (the init's WaitForProcess answer or the close's ShutdownForced answer),
 * then the exit notification. The guest's faults count messages, so accept
 * and negotiate share the first message, and stdio and wait share the wait
 * answer.
 */
export const firstMessageOf: Readonly<Record<Step, number>> = {
  accept: 0,
  negotiate: 0,
  create: 1,
  start: 2,
  exec: 4,
  stdio: 5,
  wait: 5,
  signal: 6,
  shutdown: 7,
  close: 8
}

/** How one fault is armed to strike at a step. */
export interface Arming {
  readonly faults: ReadonlyArray<Fault.Fault>
  /** Run only up to this step, then close (faults that are active all along). */
  readonly stopAfter?: Step
}

/** A row of the matrix: a fault and how it is armed for each step. */
export interface FaultRow {
  readonly name: string
  /** What the row injects, for the table. */
  readonly describe: string
  readonly arm: (step: Step) => Arming
}

/** Settings of a matrix run. */
export interface MatrixOptions {
  readonly transport: TransportService
  readonly engine: string
  /** Root of the per-cell directories (private to this run). */
  readonly dir: string
  readonly deadlineMs: number
  readonly closeTimeoutMs: number
  readonly delayMs: number
  readonly floodSize: number
  readonly payloadBytes: number
  /** Steps to run (all of them in a full run). */
  readonly steps: ReadonlyArray<Step>
  /** Largest heap growth of one cell, after full collections, that still counts as "back to its level". */
  readonly heapToleranceBytes: number
  readonly log: (line: string) => void
}

/** The rows: the seven faults of `@gcs-bridge/guest`, plus a fault-free reference. */
export const rows = (o: {
  readonly delayMs: number
  readonly floodSize: number
}): ReadonlyArray<FaultRow> => {
  const at = (make: (messages: number) => Fault.Fault) => (step: Step) => ({
    faults: [make(firstMessageOf[step])]
  })
  return [
    { name: "none", describe: "no fault (reference)", arm: (step) => ({ faults: [], stopAfter: step }) },
    {
      name: "drop",
      describe: "`drop-after=N`: the guest hangs up instead of writing message N",
      arm: at((messages) => Fault.Fault.DropAfter({ messages }))
    },
    {
      name: "delay",
      describe: `\`delay=${o.delayMs}ms\` on every response (all along; the run stops after the step)`,
      arm: (step) => ({
        faults: [Fault.Fault.Delay({ duration: Duration.millis(o.delayMs) })],
        stopAfter: step
      })
    },
    {
      name: "malformed",
      describe: "`malformed-after=N`: message N carries a payload that is not JSON",
      arm: at((messages) => Fault.Fault.MalformedAfter({ messages }))
    },
    {
      name: "oversize",
      describe: "`oversize-after=N`: message N is a bare header declaring 0x7fffffff bytes",
      arm: at((messages) => Fault.Fault.OversizeAfter({ messages }))
    },
    {
      name: "unknown-id",
      describe: "`unknown-id-after=N`: the first response from message N on carries an id no request had",
      arm: at((messages) => Fault.Fault.UnknownIdAfter({ messages }))
    },
    {
      name: "flood",
      describe: `\`flood=${o.floodSize}\`: notifications for unknown containers right after negotiation (the run stops after the step)`,
      arm: (step) => ({ faults: [Fault.Fault.Flood({ notifications: o.floodSize })], stopAfter: step })
    },
    {
      name: "silent",
      describe: "`silent-after=N`: from message N on the guest writes nothing, the connection stays open",
      arm: at((messages) => Fault.Fault.SilentAfter({ messages }))
    }
  ]
}

/** One cell: the run, where its fault surfaced, and the checks after it. */
export interface CellResult {
  readonly fault: string
  readonly step: Step
  readonly spec: string
  readonly records: ReadonlyArray<StepRecord>
  readonly guest: string
  /** The step whose outcome the cell reports (the armed step, or the first later one that did not succeed). */
  readonly surfaced: StepRecord
  readonly closeMs: number
  readonly fdDelta: number
  readonly fibersLeft: number
  readonly childrenLeft: number
  readonly socketFilesLeft: number
  readonly heapDelta: number
  readonly unhandled: number
  readonly warnings: number
  readonly errors: ReadonlyArray<string>
  readonly notes: ReadonlyArray<string>
  /** Why the cell failed; empty when it passed. */
  readonly failures: ReadonlyArray<string>
}

/** Short text of an outcome, e.g. `BridgeClosed(EndOfStream)`. */
export const outcomeText = (o: Outcome): string => {
  switch (o.kind) {
    case "ok":
      return o.note === undefined ? "ok" : "ok*"
    case "error":
      return o.detail === "" ? o.tag : `${o.tag}(${o.detail})`
    case "deadline":
      return "TimeoutException"
    case "defect":
      return "DEFECT"
    case "hang":
      return "HANG"
  }
}

const firstNotOk = (records: ReadonlyArray<StepRecord>, from: Step): StepRecord | undefined => {
  const start = Steps.indexOf(from)
  return records.find((r) => Steps.indexOf(r.step) >= start && r.step !== "close" && r.outcome.kind !== "ok")
}

/** The time bound on a step's outcome: 2 s after the fault, or after the caller's deadline. */
const checkBound = (record: StepRecord, o: MatrixOptions): string | undefined => {
  const { outcome, ms } = record
  if (outcome.kind === "defect") return `${record.step}: defect: ${outcome.detail}`
  if (outcome.kind === "hang") return `${record.step}: ${outcome.detail}`
  if (record.step === "close") {
    const bound = closeBound(o.closeTimeoutMs)
    return ms > bound ? `close took ${Math.round(ms)} ms (bound ${bound} ms)` : undefined
  }
  if (outcome.kind === "deadline") {
    return ms > o.deadlineMs + 2000
      ? `${record.step}: the caller's deadline surfaced ${Math.round(ms - o.deadlineMs)} ms late`
      : undefined
  }
  return outcome.kind === "error" && ms > 2000
    ? `${record.step}: ${outcome.tag} after ${Math.round(ms)} ms`
    : undefined
}

let cellCounter = 0

/** Runs one cell and its checks. */
export const runCell = async (row: FaultRow, step: Step, o: MatrixOptions): Promise<CellResult> => {
  const arming = row.arm(step)
  const dir = join(o.dir, `cell-${++cellCounter}`)
  mkdirSync(dir, { mode: 0o700 })
  const before = {
    fds: openFds(),
    children: childProcesses().length,
    heap: heapAfterGc(),
    problems: processProblems()
  }
  const logs = resetLogs()
  const payload = new Uint8Array(o.payloadBytes)
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >>> 9)) & 0xff

  // Every fiber forked during the run (host and guest) is counted from its start to its end.
  let live = 0
  const fibers: Metric.FiberRuntimeMetricsService = {
    recordFiberStart: () => void live++,
    recordFiberEnd: () => void live--
  }
  const result: LifecycleResult = await Effect.runPromise(
    runLifecycle({
      dir,
      transport: o.transport,
      faults: arming.faults,
      ...(arming.stopAfter === undefined ? {} : { stopAfter: arming.stopAfter }),
      deadlineMs: o.deadlineMs,
      closeTimeoutMs: o.closeTimeoutMs,
      payload
    }).pipe(Effect.provideService(Metric.FiberRuntimeMetrics, fibers), Effect.provide(CountingLogger))
  )

  const fibersLeft = await settle(() => live, 0, 2000)
  const fds = await settle(openFds, before.fds, 2000)
  const children = await settle(() => childProcesses().length, before.children, 2000)
  const heap = heapAfterGc()
  const problems = processProblems()
  const socketFilesLeft = readdirSync(dir).length

  const records = result.records
  const close = records.find((r) => r.step === "close")!
  const surfaced =
    firstNotOk(records, step) ??
    records.find((r) => r.step === step) ??
    // A run stopped early (by an earlier failure) never reached the step.
    records.filter((r) => r.step !== "close").at(-1) ??
    close
  const failures: Array<string> = []
  for (const r of records) {
    const problem = checkBound(r, o)
    if (problem !== undefined) failures.push(problem)
  }
  if (row.name === "none" || row.name === "delay" || row.name === "flood") {
    for (const r of records) {
      if (r.outcome.kind !== "ok" || r.outcome.note !== undefined) {
        failures.push(
          `${r.step} did not succeed without a fault that breaks it: ${outcomeText(r.outcome)}${r.outcome.kind === "ok" ? ` (${r.outcome.note})` : ""}`
        )
      }
    }
  }
  if (fds !== before.fds) failures.push(`file descriptors ${before.fds} → ${fds}`)
  if (fibersLeft > 0) failures.push(`${fibersLeft} fiber(s) still alive`)
  if (children !== before.children)
    failures.push(
      `child processes ${before.children} → ${children}: ${childProcesses()
        .map((c) => `${c.pid} ${c.comm} ${c.state}`)
        .join(", ")}`
    )
  if (socketFilesLeft > 0)
    failures.push(`${socketFilesLeft} socket file(s) left: ${readdirSync(dir).join(", ")}`)
  // Heap growth is judged in runMatrix, which re-runs the cell to tell a leak from warm-up.
  const unhandled =
    problems.unhandledRejections -
    before.problems.unhandledRejections +
    problems.uncaughtExceptions -
    before.problems.uncaughtExceptions
  if (unhandled > 0)
    failures.push(
      `${unhandled} unhandled rejection(s)/uncaught exception(s): ${problems.first.slice(-1).join("")}`
    )
  if (!result.guest.startsWith("stopped")) failures.push(`guest ${result.guest}`)

  const notes: Array<string> = []
  for (const r of records)
    if (r.outcome.kind === "ok" && r.outcome.note !== undefined) notes.push(`${r.step}: ${r.outcome.note}`)
  notes.push(`guest ${result.guest}`)

  return {
    fault: row.name,
    step,
    spec: arming.faults.length === 0 ? "—" : Fault.format(arming.faults),
    records,
    guest: result.guest,
    surfaced,
    closeMs: close.ms,
    fdDelta: fds - before.fds,
    fibersLeft,
    childrenLeft: children - before.children,
    socketFilesLeft,
    heapDelta: heap - before.heap,
    unhandled,
    warnings: logs.warnings,
    errors: [...logs.firstErrors],
    notes,
    failures
  }
}

/** Re-runs of a cell whose heap grew beyond the tolerance, to tell a leak from warm-up. */
const HeapReruns = 2

/**
 * The heap check of a cell. A first run of a code path leaves caches and
 * compiler feedback behind, so a cell over the tolerance is run again; a leak
 * grows the heap again every time, warm-up does not. The cell fails when
 * every re-run is over the tolerance too.
 */
const checkHeap = async (
  row: FaultRow,
  step: Step,
  cell: CellResult,
  o: MatrixOptions
): Promise<CellResult> => {
  if (cell.heapDelta <= o.heapToleranceBytes) return cell
  const reruns: Array<number> = []
  for (let i = 0; i < HeapReruns; i++) reruns.push((await runCell(row, step, o)).heapDelta)
  const text = `heap +${Math.round(cell.heapDelta / 1024)} KiB, on re-runs ${reruns.map((d) => `${d >= 0 ? "+" : ""}${Math.round(d / 1024)}`).join(", ")} KiB`
  return reruns.every((d) => d > o.heapToleranceBytes)
    ? { ...cell, failures: [...cell.failures, `${text}: it grows every time`] }
    : { ...cell, notes: [...cell.notes, `${text} (warm-up, not a leak)`] }
}

/** Runs every cell of the matrix (rows × `o.steps`). */
export const runMatrix = async (o: MatrixOptions): Promise<ReadonlyArray<CellResult>> => {
  const cells: Array<CellResult> = []
  for (const row of rows(o)) {
    for (const step of o.steps) {
      const cell = await checkHeap(row, step, await runCell(row, step, o), o)
      cells.push(cell)
      const s = cell.surfaced
      o.log(
        `  ${row.name.padEnd(10)} ${step.padEnd(9)} ${cell.spec.padEnd(22)} → ${outcomeText(s.outcome)} @${s.step} ${Math.round(s.ms)} ms; close ${Math.round(cell.closeMs)} ms; heap ${Math.round(cell.heapDelta / 1024)} KiB${cell.failures.length > 0 ? `  FAIL: ${cell.failures.join("; ")}` : ""}`
      )
    }
  }
  return cells
}
