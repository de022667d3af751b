/**
 * Native addon churn: connect / accept / write / close cycles on AF_UNIX
 * straight through `@gcs-bridge/native`, a few in flight at a time. Each
 * cycle: the client connects, writes a payload and half-closes; the server
 * reads it to EOF, checks the byte count, and closes; the client sees EOF and
 * closes. File descriptors and the addon's live handle count are sampled as
 * the cycles go and must come back to where they started.
 */
import { join } from "node:path"
import * as native from "@gcs-bridge/native"
import { openFds, settle, sleep } from "../support/probes.js"

/** Settings of a native churn run. */
export interface NativeCyclesOptions {
  readonly dir: string
  readonly cycles: number
  readonly inFlight: number
  readonly payloadBytes: number
  readonly samples: number
  readonly log: (line: string) => void
}

/** What a native churn run measured. */
export interface NativeCyclesResult {
  readonly cycles: number
  readonly failures: number
  readonly firstFailure: string | undefined
  readonly fdsBefore: number
  readonly fdsAfter: number
  readonly handlesBefore: number
  readonly handlesAfter: number
  /** (cycles done, open fds, live addon handles) after the event loop settled. */
  readonly samples: ReadonlyArray<{ readonly cycles: number; readonly fds: number; readonly handles: number }>
  readonly seconds: number
}

/** Runs the cycles. */
export const runNativeCycles = async (o: NativeCyclesOptions): Promise<NativeCyclesResult> => {
  const address: native.SocketAddress = { family: "unix", path: join(o.dir, "churn.sock") }
  const payload = new Uint8Array(o.payloadBytes).fill(0x5a)
  let failures = 0
  let firstFailure: string | undefined
  const fail = (what: string) => {
    failures++
    firstFailure ??= what
  }

  const fdsBefore = openFds()
  const handlesBefore = native.openHandles()
  const listener = native.listen(address, 511)
  listener.start((err, socket) => {
    if (err !== null || socket === null) return fail(`accept: ${err?.code ?? "no socket"}`)
    let received = 0
    socket.setCallback((event, error, chunks) => {
      if (event === native.SocketEvent.data) for (const chunk of chunks ?? []) received += chunk.length
      else if (event === native.SocketEvent.error) {
        socket.close()
        fail(`server read: ${error?.code}`)
      } else if (event === native.SocketEvent.end) {
        if (received !== payload.length) fail(`server read ${received} of ${payload.length} bytes`)
        socket.close()
      }
    })
    socket.readStart()
  })

  const cycle = () =>
    new Promise<void>((resolve) => {
      native.connect(address, (err, socket) => {
        if (err !== null || socket === null) {
          fail(`connect: ${err?.code ?? "no socket"}`)
          return resolve()
        }
        const shutdown = () => {
          try {
            socket.shutdown()
          } catch (error) {
            fail(`shutdown: ${native.isNativeError(error) ? error.code : String(error)}`)
          }
        }
        socket.setCallback((event, error) => {
          if (event === native.SocketEvent.drain) return shutdown()
          if (event === native.SocketEvent.data) return fail("client got bytes it never asked for")
          if (event === native.SocketEvent.error) fail(`client read: ${error?.code}`)
          if (event === native.SocketEvent.error || event === native.SocketEvent.end) {
            socket.close()
            resolve()
          }
        })
        socket.readStart()
        // Half-close once the kernel has taken the payload (at once, or at `drain`).
        if (socket.write([payload]) === 0) shutdown()
      })
    })

  const t0 = Date.now()
  const samples: Array<{ cycles: number; fds: number; handles: number }> = []
  const every = Math.max(1, Math.floor(o.cycles / o.samples))
  let done = 0
  let nextSample = every
  while (done < o.cycles) {
    const batch = Math.min(o.inFlight, o.cycles - done)
    await Promise.all(Array.from({ length: batch }, cycle))
    done += batch
    if (done >= nextSample || done === o.cycles) {
      nextSample += every
      // Closed handles leave the count in the loop's close phase: let it run first.
      await sleep(1)
      const fds = await settle(openFds, fdsBefore + 1, 500)
      samples.push({ cycles: done, fds, handles: native.openHandles() })
      if (samples.length % 5 === 0)
        o.log(`  native: ${done} cycles, ${fds} fds, ${native.openHandles()} handles`)
    }
  }
  listener.close()
  await sleep(1)
  const fdsAfter = await settle(openFds, fdsBefore, 1000)
  return {
    cycles: done,
    failures,
    firstFailure,
    fdsBefore,
    fdsAfter,
    handlesBefore,
    handlesAfter: native.openHandles(),
    samples,
    seconds: (Date.now() - t0) / 1000
  }
}
