/**
 * Minimal reproductions of the bugs the stress run found, kept as regression
 * checks once fixed: `node bench/dist/stress/repro.js <name>` (after
 * `tsc -b bench`) prints what happened and exits 1 while the bug is there,
 * 0 once it is fixed.
 *
 * - `close-after-interrupted-create` (runtime): a Create the caller's
 *   deadline interrupted, to a guest that never answers, makes closing the
 *   connection's scope hang for ever.
 * - `stdio-listener-leak` (runtime): an exec whose answer is malformed
 *   leaves a stdio listener's descriptor open.
 * - `deep-json` (protocol, and through it runtime): deeply nested JSON makes
 *   the body decoders throw, and a guest reply so nested kills the host's
 *   bridge as a defect.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Fault } from "@gcs-bridge/guest"
import { Codec, Frame, MessageType } from "@gcs-bridge/protocol"
import { GuestConnection } from "@gcs-bridge/runtime"
import { MemoryAddress, Transport } from "@gcs-bridge/transport"
import { Effect, Fiber, Option, References, Schedule, Stream } from "effect"
import { openFds, settle } from "../support/probes.js"
import { runLifecycle } from "./lifecycle.js"

const quiet = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.provideService(effect, References.MinimumLogLevel, "None")

const nativeTransport = () =>
  Effect.runPromise(
    Effect.gen(function* () {
      return yield* Transport
    }).pipe(Effect.provide(Transport.layer))
  )

/** Silent guest after the negotiate answer; create under a 1 s deadline; then close. Fixed: the close ends. */
const closeAfterInterruptedCreate = async (dir: string): Promise<boolean> => {
  const result = await Effect.runPromise(
    quiet(
      runLifecycle({
        dir,
        transport: await nativeTransport(),
        faults: [Fault.Fault.SilentAfter({ messages: 1 })],
        deadlineMs: 1000,
        closeTimeoutMs: 500,
        payload: new Uint8Array(16)
      })
    )
  )
  for (const r of result.records) console.log(`${r.step}: ${r.outcome.kind} after ${Math.round(r.ms)} ms`)
  console.log(`guest: ${result.guest}`)
  return result.records.some((r) => r.step === "close" && r.outcome.kind === "hang")
}

/** malformed-after=4: the three-stdio exec's answer is not JSON. Fixed: no descriptor left. */
const stdioListenerLeak = async (dir: string): Promise<boolean> => {
  const transport = await nativeTransport()
  let leaked = 0
  // Run 0 is the warm-up: the first child process opens libuv's signal pipe for good.
  for (let i = 0; i <= 5; i++) {
    const cell = mkdtempSync(join(dir, "cell-"))
    const before = openFds()
    const result = await Effect.runPromise(
      quiet(
        runLifecycle({
          dir: cell,
          transport,
          faults: [Fault.Fault.MalformedAfter({ messages: 4 })],
          deadlineMs: 1000,
          closeTimeoutMs: 500,
          payload: new Uint8Array(16)
        })
      )
    )
    const after = await settle(openFds, before, 1000)
    const exec = result.records.find((r) => r.step === "exec")
    console.log(
      `run ${i}: exec ${exec?.outcome.kind}, descriptors ${before} → ${after}${i === 0 ? " (warm-up)" : ""}`
    )
    if (i > 0) leaked += after - before
  }
  return leaked > 0
}

/** A 5,000-deep array as a response body, decoded directly and answered to a real host's negotiation. */
const deepJson = async (): Promise<boolean> => {
  const depth = 5000
  const body = new TextEncoder().encode(
    `{"Result":${"[".repeat(depth)}${"]".repeat(depth)},"ActivityId":"00000000-0000-0000-0000-000000000000"}`
  )
  let threw = false
  try {
    const decoded = Codec.decodeResponse("Start", body)
    console.log(`decodeResponse: ${decoded._tag}`)
  } catch (e) {
    threw = true
    console.log(`decodeResponse threw ${String(e)}`)
  }
  const address = new MemoryAddress({ name: "repro-deep" })
  const made = await Effect.runPromise(
    quiet(
      Effect.scoped(
        Effect.gen(function* () {
          const transport = yield* Transport
          const host = yield* Effect.forkChild(
            Effect.result(GuestConnection.make({ address, connectTimeout: "5 seconds" }))
          )
          const guest = yield* transport
            .connect(address, MessageType.LinuxGcsVsockPort)
            .pipe(Effect.retry({ times: 200, schedule: Schedule.spaced("5 millis") }), Effect.orDie)
          const request = yield* Stream.runHead(guest.stream).pipe(Effect.orDie)
          const id = Option.match(request, { onNone: () => 0, onSome: (b) => b[8]! })
          yield* Effect.orDie(
            guest.write(
              Frame.encodeFrame(MessageType.responseType(MessageType.Proc.NegotiateProtocol), id, body)
            )
          )
          return yield* Fiber.join(host)
        })
      ).pipe(Effect.provide(Transport.layerMemory))
    )
  )
  const error = made._tag === "Failure" ? made.failure : undefined
  const reason = error !== undefined && "reason" in error ? String(error.reason) : ""
  console.log(`GuestConnection.make: ${made._tag === "Success" ? "succeeded" : `${error?._tag} ${reason}`}`)
  return threw || (error?._tag === "BridgeClosed" && reason === "Defect")
}

const repros: Record<string, (dir: string) => Promise<boolean>> = {
  "close-after-interrupted-create": closeAfterInterruptedCreate,
  "stdio-listener-leak": stdioListenerLeak,
  "deep-json": deepJson
}

const name = process.argv[2] ?? ""
const repro = repros[name]
if (repro === undefined) {
  console.error(`usage: node bench/dist/stress/repro.js <${Object.keys(repros).join(" | ")}>`)
  process.exit(2)
}
const dir = mkdtempSync(join(tmpdir(), "gcs-repro-"))
let present: boolean
try {
  present = await repro(dir)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(present ? `${name}: the bug is present` : `${name}: fixed`)
process.exit(present ? 1 : 0)
