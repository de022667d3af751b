/**
 * The soak: one guest connection, many exec + wait cycles of a UVM process
 * with all three stdio streams (`cat`: stdin echoed on stdout, stderr empty),
 * each in a scope of its own, a few in flight at a time. The guest runs in a
 * process of its own (soakGuest.ts), so the host's file descriptors and heap
 * (after full collections) are measured alone; the guest's descriptors and
 * children are sampled too. Everything must stay flat once the first
 * interval has warmed up.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { GuestConnection } from "@gcs-bridge/runtime"
import type { TransportService } from "@gcs-bridge/transport"
import { Transport, UnixAddress } from "@gcs-bridge/transport"
import { Chunk, Effect, Exit, Scope, Stream } from "effect"
import { CountingLogger, resetLogs } from "./logs.js"
import { childProcesses, heapAfterGc, openFds, settle, sleep } from "./probes.js"

/** Settings of a soak run. */
export interface SoakOptions {
  readonly dir: string
  readonly transport: TransportService
  /** The guest process's Transport engine. */
  readonly engine: string
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

  const guest = spawn(
    process.execPath,
    [fileURLToPath(new URL("./soakGuest.js", import.meta.url)), address.path, o.engine],
    {
      stdio: ["ignore", "ignore", "pipe"]
    }
  )
  let guestErrors = ""
  guest.stderr.on("data", (chunk: Buffer) => {
    guestErrors = (guestErrors + chunk.toString("utf8")).slice(-2000)
  })
  const guestExited = new Promise<string>((resolve) => {
    guest.once("exit", (code, signal) => resolve(signal === null ? `exit ${code}` : `signal ${signal}`))
    guest.once("error", (error) => resolve(`spawn failed: ${error.message}`))
  })
  const guestPid = guest.pid ?? -1

  const sample = async (cycles: number) => {
    const fds = await settle(openFds, samples[1]?.fds ?? openFds(), 1000)
    const guestFds = await settle(() => openFds(guestPid), samples[1]?.guestFds ?? openFds(guestPid), 1000)
    const children = await settle(() => childProcesses(guestPid).length, 0, 1000)
    samples.push({ cycles, fds, guestFds, children, heap: heapAfterGc(), seconds: (Date.now() - t0) / 1000 })
    o.log(
      `  soak: ${cycles} cycles, host ${fds} fds, heap ${(samples[samples.length - 1]!.heap / 2 ** 20).toFixed(2)} MiB; guest ${guestFds} fds, ${children} children`
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
    const ended = await Promise.race([guestExited, sleep(5000).then(() => undefined)])
    if (ended === undefined) guest.kill("SIGKILL")
    guestExit = ended ?? `did not exit within 5 s of the host's close (killed)`
  }
  if (guestErrors !== "") guestExit += `: ${guestErrors.trim().split("\n")[0]}`
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
