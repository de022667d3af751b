/**
 * The soak: one guest connection, many exec + wait cycles of a UVM process
 * with all three stdio streams (`cat`: stdin echoed on stdout, stderr empty),
 * each in a scope of its own, a few in flight at a time. File descriptors,
 * child processes and heap (after full collections) are sampled at fixed
 * intervals; they must stay flat once the first interval has warmed up.
 */
import { Guest } from "@gcs-bridge/guest"
import { GuestConnection } from "@gcs-bridge/runtime"
import type { TransportService } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Chunk, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { CountingLogger, resetLogs } from "./logs.js"
import { childProcesses, heapAfterGc, openFds, settle, sleep } from "./probes.js"

/** Settings of a soak run. */
export interface SoakOptions {
  readonly dir: string
  readonly transport: TransportService
  readonly cycles: number
  readonly sampleEvery: number
  readonly inFlight: number
  readonly payloadBytes: number
  readonly log: (line: string) => void
}

/** One reading, taken after `cycles` cycles with nothing in flight. */
export interface SoakSample {
  readonly cycles: number
  readonly fds: number
  readonly children: number
  readonly heap: number
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
  readonly seconds: number
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0

/** Runs the soak. */
export const runSoak = async (o: SoakOptions): Promise<SoakResult> => {
  const address = new UnixAddress({ path: `${o.dir}/soak` })
  const payload = new Uint8Array(o.payloadBytes)
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff
  const logs = resetLogs()
  const samples: Array<SoakSample> = []
  let failures = 0
  let firstFailure: string | undefined
  const t0 = Date.now()

  const sample = async (cycles: number) => {
    const fds = await settle(openFds, samples[0]?.fds ?? openFds(), 1000)
    const children = await settle(() => childProcesses().length, 0, 1000)
    samples.push({ cycles, fds, children, heap: heapAfterGc(), seconds: (Date.now() - t0) / 1000 })
    const s = samples[samples.length - 1]!
    o.log(
      `  soak: ${cycles} cycles, ${s.fds} fds, ${s.children} children, heap ${(s.heap / 2 ** 20).toFixed(2)} MiB`
    )
  }

  const oneCycle = (gc: GuestConnection["Type"]) =>
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
            Effect.zipRight(Stream.run(Stream.make(payload), p.stdin), p.closeStdin)
          ],
          { concurrency: 3 }
        )
        const code = yield* p.wait
        const stdout = Buffer.concat(Chunk.toReadonlyArray(out))
        const stderrBytes = Chunk.reduce(err, 0, (n, c) => n + c.length)
        if (code !== 0 || !same(stdout, payload) || stderrBytes !== 0) {
          return `exit ${code}, stdout ${stdout.length} of ${payload.length} B, stderr ${stderrBytes} B`
        }
        return undefined
      })
    ).pipe(
      Effect.catchAllCause((cause) => Effect.succeed(`failed: ${String(cause).split("\n")[0]}`)),
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
      Scope.extend(effect, scope).pipe(
        Effect.provideService(Transport, o.transport),
        Effect.provide(CountingLogger)
      )
    )
  try {
    const guest = await run(
      Effect.forkScoped(Guest.run({ address, once: true, retryInterval: "5 millis", console: "none" }))
    )
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
    await run(Fiber.interrupt(guest))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
  return {
    cycles: o.cycles,
    failures,
    firstFailure,
    samples,
    warnings: logs.warnings,
    errors: [...logs.firstErrors],
    seconds: (Date.now() - t0) / 1000
  }
}
