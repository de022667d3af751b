/**
 * The soak: one guest connection, many exec + wait cycles of a UVM process
 * with all three stdio streams (`cat`: stdin echoed on stdout, stderr empty),
 * each in a scope of its own, a few in flight at a time. The guest runs in a
 * process of its own (a peer), so the host's file descriptors and heap
 * (after full collections) are measured alone; the guest's descriptors and
 * children are sampled too. Everything must stay flat once the first
 * interval has warmed up.
 */
import { GuestConnection, type GuestConnectionService } from "@gcs-bridge/runtime"
import type { TransportService } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Effect, Exit, Scope, Stream } from "effect"
import { startPeer } from "../support/peerProcess.js"
import { childProcesses, heapAfterGc, openFds, settle, sleep } from "../support/probes.js"
import { CountingLogger, resetLogs } from "./logs.js"

/** Settings of a soak run. */
export interface SoakOptions {
  readonly dir: string
  readonly transport: TransportService
  /** The guest process's Transport engine. */
  readonly engine: "native" | "node"
  readonly cycles: number
  readonly sampleEvery: number
  readonly inFlight: number
  readonly payloadBytes: number
  readonly log: (line: string) => void
}

/** One reading, taken after `cycles` cycles with nothing in flight. */
export interface SoakSample {
  readonly cycles: number
  /** The host's open descriptors and heap. */
  readonly fds: number
  readonly heap: number
  /** The guest process's open descriptors and live children. */
  readonly guestFds: number
  readonly children: number
  readonly seconds: number
}

/** What a soak run measured. */
export interface SoakResult {
  readonly cycles: number
  readonly failures: number
  readonly firstFailure: string | undefined
  readonly samples: ReadonlyArray<SoakSample>
  readonly warnings: number
  readonly errors: ReadonlyArray<string>
  /** How the guest process ended. */
  readonly guestExit: string
  readonly seconds: number
}

/** Runs the soak. */
export const runSoak = async (o: SoakOptions): Promise<SoakResult> => {
  const path = `${o.dir}/soak`
  const address = new UnixAddress({ path })
  const payload = new Uint8Array(o.payloadBytes)
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff
  const logs = resetLogs()
  const samples: Array<SoakSample> = []
  let failures = 0
  let firstFailure: string | undefined
  const t0 = Date.now()

  const guest = startPeer({ kind: "guest", path, engine: o.engine })
  const guestPid = guest.pid

  const sample = async (cycles: number) => {
    const fds = await settle(openFds, samples[1]?.fds ?? openFds(), 1000)
    const guestFds = await settle(() => openFds(guestPid), samples[1]?.guestFds ?? openFds(guestPid), 1000)
    const children = await settle(() => childProcesses(guestPid).length, 0, 1000)
    samples.push({ cycles, fds, guestFds, children, heap: heapAfterGc(), seconds: (Date.now() - t0) / 1000 })
    o.log(
      `  soak: ${cycles} cycles, host ${fds} fds, heap ${(samples[samples.length - 1]!.heap / 2 ** 20).toFixed(2)} MiB; guest ${guestFds} fds, ${children} children`
    )
  }

  const oneCycle = (gc: GuestConnectionService) =>
    Effect.scoped(
      Effect.gen(function* () {
        const p = yield* gc.exec({
          CommandArgs: ["cat"],
          CreateStdInPipe: true,
          CreateStdOutPipe: true,
          CreateStdErrPipe: true
        })
        const [out, err] = yield* Effect.all(
          [
            Stream.runCollect(p.stdout),
            Stream.runCollect(p.stderr),
            Effect.andThen(Stream.run(Stream.make(payload), p.stdin), p.closeStdin)
          ],
          { concurrency: 3 }
        )
        const code = yield* p.wait
        const stdout = Buffer.concat(out)
        const stderrBytes = Buffer.concat(err).length
        if (code !== 0 || Buffer.compare(stdout, payload) !== 0 || stderrBytes !== 0) {
          return `exit ${code}, stdout ${stdout.length} of ${payload.length} B, stderr ${stderrBytes} B`
        }
        return undefined
      })
    ).pipe(
      Effect.catchCause((cause) => Effect.succeed(`failed: ${String(cause).split("\n")[0]}`)),
      Effect.map((problem) => {
        if (problem !== undefined) {
          failures++
          firstFailure ??= problem
        }
      })
    )

  const scope = Effect.runSync(Scope.make())
  const run = <A, E>(effect: Effect.Effect<A, E, Transport | Scope.Scope>) =>
    Effect.runPromise(
      Scope.provide(scope)(effect).pipe(
        Effect.provideService(Transport, o.transport),
        Effect.provide(CountingLogger)
      )
    )
  let guestExit: string
  try {
    const gc = await run(GuestConnection.make({ address, connectTimeout: "10 seconds" }))
    await sample(0)
    let done = 0
    while (done < o.cycles) {
      const slice = Math.min(o.sampleEvery, o.cycles - done)
      await run(
        Effect.forEach(Array.from({ length: slice }), () => oneCycle(gc), {
          concurrency: o.inFlight,
          discard: true
        })
      )
      done += slice
      await sleep(5)
      await sample(done)
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    // The guest serves one connection: the host's close ends it.
    await guest.stop(5000)
    const status = await guest.exited
    guestExit = guest.forced()
      ? "did not exit within 5 s of the host's close (stopped)"
      : status.signal === null
        ? `exit ${status.code}`
        : `signal ${status.signal}`
  }
  const output = guest.output().trim()
  if (output !== "") guestExit += `: ${output.split("\n")[0]}`
  return {
    cycles: o.cycles,
    failures,
    firstFailure,
    samples,
    warnings: logs.warnings,
    errors: [...logs.firstErrors],
    guestExit,
    seconds: (Date.now() - t0) / 1000
  }
}
